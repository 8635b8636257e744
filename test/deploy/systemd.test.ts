// deploy/systemd/xcpb-worker.service: accepted by `systemd-analyze verify` (no warning: a mistyped
// key or value is only a warning to systemd, and silently ignored at run time), runs `xcpb worker`
// with the worker's process environment (workers/process-env.ts: the same one the Dockerfile sets),
// and gives the worker a state folder and its secrets as credentials files, not environment values.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { WORKER_PROCESS_ENV } from '../../workers/process-env';
import { repoRoot } from '../helpers/cli';

const exec = promisify(execFile);
const unitPath = path.join(repoRoot, 'deploy/systemd/xcpb-worker.service');
const temps: string[] = [];
afterAll(async () => {
  for (const t of temps) await rm(t, { recursive: true, force: true });
});

/** `Key=value` lines of one section, in order (a key may repeat: Environment=). */
async function section(name: string): Promise<[string, string][]> {
  const lines = (await readFile(unitPath, 'utf8')).split('\n').map((l) => l.trim());
  const start = lines.indexOf(`[${name}]`);
  expect(start, `section [${name}]`).toBeGreaterThanOrEqual(0);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((l) => l.startsWith('['));
  return (end < 0 ? rest : rest.slice(0, end))
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

/** What systemd-analyze says of the unit, its paths pointed at this checkout and this node. */
async function verify(unitText: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-unit-'));
  temps.push(dir);
  const file = path.join(dir, 'xcpb-worker.service');
  await writeFile(
    file,
    unitText.replaceAll('/usr/bin/node', process.execPath).replaceAll('/opt/xcp-backup', repoRoot),
  );
  const r = await exec('systemd-analyze', ['verify', file]).catch(
    (err: NodeJS.ErrnoException & { stderr?: string }) => {
      if (err.code === 'ENOENT')
        throw new Error('systemd-analyze is not installed: `apt-get install systemd`, as .ci/run does');
      return { stderr: err.stderr ?? String(err) };
    },
  );
  // Only what concerns this unit (verify also reads the host's units it depends on).
  return r.stderr
    .split('\n')
    .filter((l) => l.includes(file))
    .join('\n');
}

describe('deploy/systemd/xcpb-worker.service', () => {
  it('is accepted by systemd-analyze verify without a warning; a mistyped key is not', async () => {
    const text = await readFile(unitPath, 'utf8');
    expect(await verify(text)).toBe('');
    // the check can fail: systemd only warns of an unknown key or value
    expect(await verify(text.replace('Restart=on-failure', 'Restart=sometimes'))).toMatch(/sometimes/);
  });

  it("runs `xcpb worker` with the worker's process environment, the Dockerfile's too", async () => {
    const service = await section('Service');
    const exec = service.find(([k]) => k === 'ExecStart')?.[1];
    expect(exec).toBe('/usr/bin/node dist/xcpb.mjs worker --config /etc/xcpb/config.yaml');
    const env = Object.fromEntries(
      service.filter(([k]) => k === 'Environment').map(([, v]) => v.split(/=(.*)/s).slice(0, 2)),
    );
    expect(env).toMatchObject(WORKER_PROCESS_ENV);
    const dockerfile = await readFile(path.join(repoRoot, 'Dockerfile'), 'utf8');
    const envLine = dockerfile.split('\n').find((l) => l.startsWith('ENV '));
    expect(
      Object.fromEntries(
        envLine!
          .slice(4)
          .trim()
          .split(/\s+/)
          .map((kv) => kv.split(/=(.*)/s).slice(0, 2)),
      ),
    ).toEqual(WORKER_PROCESS_ENV);
  });

  it('gives the worker a state folder, secrets as credential files, and a graceful stop', async () => {
    const service = Object.fromEntries(await section('Service'));
    expect(service.StateDirectory).toBe('xcpb');
    const text = await readFile(unitPath, 'utf8');
    expect(text).toContain('Environment=XCPB_STATE_DIR=%S/xcpb');
    expect(service.LoadCredential).toMatch(/^\w+:\/etc\/xcpb\/secrets\//);
    // the config's reference to that credential, as the unit's comment shows it
    expect(text).toContain(
      `password: { file: /run/credentials/xcpb-worker.service/${service.LoadCredential.split(':')[0]} }`,
    );
    expect(service.KillSignal).toBe('SIGTERM');
    expect(service.Restart).toBe('on-failure');
    expect((await section('Install')).map(([k, v]) => `${k}=${v}`)).toContain('WantedBy=multi-user.target');
  });
});
