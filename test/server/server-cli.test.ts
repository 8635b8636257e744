// `xcpb server start | status | stop` with a state directory of its own, on a free port.
import { mkdtemp, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../server/dev-server';
import { runXcpb } from '../helpers/cli';

let env: Record<string, string>;

afterAll(async () => {
  if (env) await runXcpb(['server', 'stop'], env);
});

describe('xcpb server', () => {
  it('install prints the pinned binary on its last line', async () => {
    const r = await runXcpb(['server', 'install'], { TEMPORAL_CLI_PATH: inject('temporalCli') });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(inject('temporalCli'));
  });

  it('starts a persistent server, finds it on a second start, and stops it', async () => {
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-state-'));
    const port = await freePort();
    env = { XCPB_STATE_DIR: stateDir, TEMPORAL_CLI_PATH: inject('temporalCli') };
    const first = await runXcpb(['server', 'start', '--port', String(port)], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`Temporal: 127.0.0.1:${port}`);
    expect(first.stdout).toMatch(/Web UI: +http:\/\/127\.0\.0\.1:\d+/);
    expect(await readdir(stateDir)).toContain('temporal.db');

    const second = await runXcpb(['server', 'start', '--port', String(port)], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('already running');

    // The search attributes of DESIGN §4 are registered.
    const attrs = await runXcpbTemporal([
      'operator',
      'search-attribute',
      'list',
      '--address',
      `127.0.0.1:${port}`,
    ]);
    for (const name of [
      'XcpbJobId',
      'XcpbScheduleId',
      'XcpbMode',
      'XcpbPoolIds',
      'XcpbVmUuids',
      'XcpbOutcome',
    ]) {
      expect(attrs).toContain(name);
    }
    const retention = await runXcpbTemporal([
      'operator',
      'namespace',
      'describe',
      '--address',
      `127.0.0.1:${port}`,
      '-n',
      'default',
    ]);
    expect(retention).toMatch(/720h|30d|2592000/);

    // Later commands on this machine find the recorded address without flags.
    const runs = await runXcpb(['runs', '--job', 'none'], { ...env, TEMPORAL_ADDRESS: '' });
    expect(runs.stderr).toBe('');
    expect(runs.stdout).toContain('no runs');
    const elsewhere = await runXcpb(['runs'], { ...env, TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(elsewhere.stderr, 'TEMPORAL_ADDRESS wins over the recorded address').toContain(
      'cannot connect to Temporal at 127.0.0.1:1',
    );

    expect((await runXcpb(['server', 'status'], env)).stdout).toContain('running');
    expect((await runXcpb(['server', 'stop'], env)).stdout).toContain('stopped');
    expect((await runXcpb(['server', 'status'], env)).code).toBe(1);
  });
});

async function runXcpbTemporal(args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  return await new Promise((resolve, reject) =>
    execFile(inject('temporalCli'), args, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
}
