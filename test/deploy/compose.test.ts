// docker-compose.yml is accepted by `docker-compose config` (Debian's docker-compose; no engine
// needed) and hangs together: the Temporal server runs the settings file test/cluster/ tests, every
// secret the config references is mounted, long-running services restart and report health. The
// image's contents install with `npm ci --omit=dev` and `xcpb` runs from them.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateConfig } from '../../core/config/validate';
import { clusterConfigDir } from '../../server/temporal-server';
import { repoRoot } from '../helpers/cli';

const exec = promisify(execFile);
const temps: string[] = [];
afterAll(async () => {
  for (const t of temps) await rm(t, { recursive: true, force: true });
});

interface ComposeService {
  image?: string;
  command?: string[];
  restart?: string;
  healthcheck?: unknown;
  secrets?: { source: string }[] | string[];
  volumes?: string[];
}

async function composeConfig(): Promise<{
  services: Record<string, ComposeService>;
  secrets: Record<string, unknown>;
}> {
  const r = await exec('docker-compose', ['-f', path.join(repoRoot, 'docker-compose.yml'), 'config'], {
    cwd: repoRoot,
  }).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
    if (err.code === 'ENOENT')
      throw new Error(
        'docker-compose is not installed: `apt-get install docker-compose` (Debian), as .ci/run does',
      );
    throw new Error(`docker-compose config rejected docker-compose.yml: ${err.stderr}`);
  });
  return parse(r.stdout);
}

const secretNames = (s: ComposeService) =>
  (s.secrets ?? []).map((x) => (typeof x === 'string' ? x : x.source));

describe('docker-compose.yml', () => {
  it('is accepted by docker-compose config, and the Temporal server runs the tested settings file', async () => {
    const { services } = await composeConfig();
    expect(Object.keys(services).sort()).toEqual(
      [
        'grafana',
        'postgresql',
        'prometheus',
        'temporal',
        'temporal-schema',
        'temporal-ui',
        'xcpb-setup',
        'xcpb-worker',
      ].sort(),
    );
    const temporal = services.temporal;
    expect(temporal.image).toMatch(/^temporalio\/server:/);
    expect(temporal.volumes).toContain(`${clusterConfigDir}:/etc/temporal/xcpb:ro`);
    expect(temporal.command?.join(' ')).toContain('--config /etc/temporal/xcpb --env cluster');
    expect(services['xcpb-setup'].command).toEqual(['server', 'setup', '--config', '/etc/xcpb/config.yaml']);
    for (const name of ['postgresql', 'temporal', 'temporal-ui', 'xcpb-worker', 'prometheus', 'grafana'])
      expect(services[name].restart, name).toBe('unless-stopped');
    for (const name of ['postgresql', 'temporal', 'xcpb-worker'])
      expect(services[name].healthcheck, name).toBeDefined();
  });

  it("the worker gets its config, every secret the config references and the remote's folder", async () => {
    const { services, secrets } = await composeConfig();
    const worker = services['xcpb-worker'];
    const configMount = worker.volumes?.find((v) => v.split(':')[1] === '/etc/xcpb/config.yaml');
    expect(configMount).toBeDefined();
    const result = validateConfig(parse(await readFile(configMount!.split(':')[0], 'utf8')));
    expect(result.ok, JSON.stringify(result)).toBe(true);
    if (!result.ok) return;
    expect(result.config.temporal?.address).toBe('temporal:7233');
    for (const pool of result.config.pools) {
      expect('file' in pool.password, `pool ${pool.id} reads its password from a compose secret`).toBe(true);
      const file = 'file' in pool.password ? pool.password.file : '';
      const name = path.basename(file);
      expect(file).toBe(`/run/secrets/${name}`);
      expect(secretNames(worker)).toContain(name);
      expect(Object.keys(secrets)).toContain(name);
    }
    const targets = (worker.volumes ?? []).map((v) => v.split(':')[1]);
    for (const remote of result.config.remotes) expect(targets).toContain(new URL(remote.url).pathname);
    expect(worker.command).toEqual([
      'worker',
      '--config',
      '/etc/xcpb/config.yaml',
      '--metrics',
      '0.0.0.0:9464',
    ]);
  });

  it("the image's contents install with npm ci --omit=dev, build, and xcpb runs from them", {
    timeout: 600_000,
  }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-image-'));
    temps.push(dir);
    // What the Dockerfile copies: the checkout, minus .dockerignore's names (top-level folders, *.ext).
    const ignored = (await readFile(path.join(repoRoot, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const skip = (f: string) =>
      ignored.some((i) => (i.startsWith('*') ? f.endsWith(i.slice(1)) : f === i || f.startsWith(`${i}/`)));
    const files: string[] = [];
    for (const top of (await readdir(repoRoot, { withFileTypes: true })).filter((e) => !skip(e.name))) {
      if (top.isFile()) files.push(top.name);
      else if (top.isDirectory())
        for (const e of await readdir(path.join(repoRoot, top.name), {
          recursive: true,
          withFileTypes: true,
        }))
          if (e.isFile()) files.push(path.relative(repoRoot, path.join(e.parentPath, e.name)));
    }
    files.splice(0, files.length, ...files.filter((f) => !skip(f)));
    expect(files).toContain('bin/xcpb.mjs');
    expect(files.some((f) => f.startsWith('test/'))).toBe(false);
    for (const f of files) await cp(path.join(repoRoot, f), path.join(dir, f), { recursive: true });
    await exec('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: dir,
      timeout: 540_000,
      maxBuffer: 16 << 20,
    });
    // What the Dockerfile runs next, and the command its ENTRYPOINT names.
    const dockerfile = await readFile(path.join(repoRoot, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain('RUN npm run build');
    expect(dockerfile).toContain('ENTRYPOINT ["node", "dist/xcpb.mjs"]');
    await exec('npm', ['run', 'build'], { cwd: dir });
    const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as {
      version: string;
    };
    for (const entry of ['dist/xcpb.mjs', 'bin/xcpb.mjs']) {
      const version = await exec(process.execPath, [entry, '--version'], { cwd: dir });
      expect(version.stdout.trim(), entry).toBe(`xcpb ${pkg.version}`);
      // The worker's whole import graph loads without dev dependencies (it stops at the missing file).
      const worker = await exec(process.execPath, [entry, 'worker', '--config', '/nonexistent/config.yaml'], {
        cwd: dir,
      }).catch((err: { code: number; stderr: string }) => err);
      expect('code' in worker ? worker.code : 0, entry).toBe(2);
      expect(worker.stderr, entry).toContain('/nonexistent/config.yaml: file does not exist');
    }
  });
});
