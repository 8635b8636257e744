// `xcpb worker` refuses what would go wrong later or silently: an unknown --pool, a pool whose secret
// does not resolve, a pool another live worker already serves (exit 2, naming the pool or the other
// worker). It logs in to each pool at start, one line per failed pool, and keeps its log short.
import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackupStack, PASSWORD_ENV, startBackupStack } from '../helpers/backup-stack';
import { repoRoot } from '../helpers/cli';
import { temporalAddress } from '../helpers/temporal';
import { stopAllWorkerProcesses, WorkerProcess } from '../helpers/worker-process';

let stack: BackupStack;
const children: ChildProcess[] = [];

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'worker-test-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '1GiB', default: true }],
          vms: [
            {
              name: 'app',
              tags: ['prod'],
              power: 'Running' as const,
              disks: [
                { name: 'root', size: '8MiB', content: { type: 'random' as const, seed: 3, blocks: 3 } },
              ],
            },
          ],
        },
      ],
    },
    jobs: [
      {
        id: 'nightly',
        mode: 'delta',
        vms: { tags: ['prod'] },
        remotes: ['nas'],
        schedules: [{ id: 'd', cron: '0 3 * * *' }],
      },
    ],
    workers: false,
  });
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await stopAllWorkerProcesses();
  await stack?.close();
});

/** Runs `xcpb worker` with the stack's config and returns its exit code and output once it exits
 * (or after `untilOutput` appears, then stopped). */
async function worker(
  args: string[],
  env: Record<string, string | undefined>,
  untilOutput?: RegExp,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/xcpb.mjs'), 'worker', ...args], {
    cwd: repoRoot,
    env: {
      ...process.env,
      NO_COLOR: '1',
      TEMPORAL_ADDRESS: temporalAddress(),
      TEMPORAL_NAMESPACE: stack.namespace,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const seen = new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      if (untilOutput?.test(output)) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
  });
  if (untilOutput) {
    await Promise.race([seen, exited]);
    child.kill('SIGTERM');
  }
  return { code: await exited, output };
}

describe('xcpb worker start checks', () => {
  it('an unknown --pool: exit 2 naming it and the known pools', async () => {
    const config = await stack.writeConfigFile();
    const r = await worker(['--config', config, '--pool', 'lab', '--pool', 'nope'], {
      [PASSWORD_ENV]: stack.pool().password,
    });
    expect(r.code).toBe(2);
    expect(r.output.trim()).toBe(`xcpb worker: unknown pool "nope" (pools in ${config}: lab)`);
  });

  it('a secret that does not resolve: exit 2 naming the pool and the reference', async () => {
    const r = await worker(['--config', await stack.writeConfigFile()], { [PASSWORD_ENV]: '' });
    expect(r.code).toBe(2);
    expect(r.output.trim()).toBe(
      `xcpb worker: pool "lab": password: environment variable ${PASSWORD_ENV} is not set`,
    );
  });

  it('a failed login is one line, and the worker still starts', async () => {
    const r = await worker(
      ['--config', await stack.writeConfigFile()],
      { [PASSWORD_ENV]: 'wrong' },
      /worker ready/,
    );
    const lines = r.output.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('pool lab: login'))).toEqual([
      expect.stringMatching(
        /^pool lab: login to http:\/\/127\.0\.0\.1:\d+\/? failed: .*SESSION_AUTHENTICATION_FAILED.* \(its tasks retry the login\)$/,
      ),
    ]);
    expect(r.output).toContain('worker ready');
    expect(r.output).not.toContain('No workflows registered');
  });

  it("a second worker for a pool: exit 2 with the first one's identity and host; after a kill -9, a new one starts", async () => {
    const first = await WorkerProcess.start(stack);
    expect(first.output).toContain('pool lab: logged in to');
    expect(first.output).not.toContain('No workflows registered');
    const second = await worker(['--config', await stack.writeConfigFile()], {
      [PASSWORD_ENV]: stack.pool().password,
    });
    expect(second.code).toBe(2);
    expect(second.output).toContain(
      `xcpb worker: pool "lab" is already served by worker ${first.pid}@${os.hostname()} (process ${first.pid} on host ${os.hostname()})`,
    );

    await first.kill();
    const third = await WorkerProcess.start(stack);
    expect(third.output).toContain('worker ready');
    await third.stop();
  });

  it('a routine activity failure is logged in one line, without a stack', async () => {
    const live = await WorkerProcess.start(stack);
    await stack.pool().control.cutExport({ afterBytes: 100_000 });
    const report = await stack.runJob('nightly');
    expect(report.status, JSON.stringify(report)).toBe('success');
    await live.stop();
    const failures = live.output.split('\n').filter((l) => l.includes(' failed (attempt '));
    expect(failures, live.output).toEqual([
      expect.stringMatching(/^\S+ WARN activity \w+ failed \(attempt 1, xcpb:nightly:[^)]+\): .+/),
    ]);
    expect(live.output).not.toMatch(/^\s+at /m);
  });
});
