// `xcpb server setup` on namespaces of the shared dev server that no one prepared: before it, every
// command says in one line to run it (naming the namespace); it creates what is missing, a second run
// changes nothing, and afterwards the same commands work.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runXcpb } from '../helpers/cli';
import { temporalAddress, testClient } from '../helpers/temporal';

const exec = promisify(execFile);
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup) await c();
});

const CONFIG = {
  pools: [{ id: 'lab', url: 'http://127.0.0.1:9', username: 'root', password: { env: 'UNUSED_PW' } }],
  remotes: [{ id: 'nas', url: 'file:///tmp/xcpb-setup-test-remote' }],
  jobs: [
    {
      id: 'nightly',
      mode: 'delta',
      vms: { pools: ['lab'] },
      remotes: ['nas'],
      schedules: [{ id: 'daily', cron: '0 3 * * *' }],
    },
  ],
};

async function configFile(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-setup-'));
  const file = path.join(dir, 'config.json');
  await writeFile(file, JSON.stringify(CONFIG));
  return file;
}

/** The commands a new user tries first, each with the arguments it needs. */
const commands = (config: string) => [
  ['apply', config],
  ['schedules'],
  ['run', 'nightly', '--config', config, '--no-wait'],
  ['runs', '--job', 'nightly'],
];

async function removeSchedules(namespace: string) {
  const client = await testClient(namespace);
  for await (const s of client.schedule.list()) await client.schedule.getHandle(s.scheduleId).delete();
  await client.connection.close();
}

describe('xcpb server setup', () => {
  it('a namespace without our search attributes: each command names the setup; after it they work', async () => {
    const namespace = `fresh-${randomUUID().slice(0, 8)}`;
    await exec(inject('temporalCli'), [
      'operator',
      'namespace',
      'create',
      '--address',
      temporalAddress(),
      '-n',
      namespace,
    ]);
    cleanup.push(() => removeSchedules(namespace));
    const env = { TEMPORAL_ADDRESS: temporalAddress(), TEMPORAL_NAMESPACE: namespace, UNUSED_PW: 'x' };
    const config = await configFile();

    // `schedules` lists nothing on a bare namespace without needing the attributes; the others fail.
    for (const args of commands(config).filter(([c]) => c !== 'schedules')) {
      const r = await runXcpb(args, env);
      expect(r.code, `${args.join(' ')}: ${r.stdout}`).toBe(1);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toEqual([
        `xcpb ${args[0]}: namespace "${namespace}" has no search attribute XcpbJobId: run \`xcpb server setup --namespace ${namespace}\``,
      ]);
    }

    // The worker too refuses to start rather than fail each run at its first step.
    const worker = await runXcpb(['worker', '--config', config], env);
    expect(worker.code).toBe(1);
    expect(worker.stderr.trim()).toBe(
      `xcpb worker: namespace "${namespace}" has no search attribute XcpbJobId: run \`xcpb server setup --namespace ${namespace}\``,
    );

    const setup = await runXcpb(['server', 'setup'], env);
    expect(setup.code, setup.stderr).toBe(0);
    expect(setup.stdout).toContain(`setting up ${namespace} on ${temporalAddress()}`);
    expect(setup.stdout).toContain(
      'search attributes: added XcpbJobId, XcpbScheduleId, XcpbMode, XcpbPoolIds, XcpbVmUuids, XcpbOutcome',
    );
    expect(setup.stdout).toContain('ready for xcp-backup');

    const again = await runXcpb(['server', 'setup'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`namespace ${namespace}: present`);
    expect(again.stdout).toContain('search attributes: all 6 present');
    expect(again.stdout).not.toMatch(/created|added/);

    for (const args of commands(config)) {
      const r = await runXcpb(args, env);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    const client = await testClient(namespace);
    cleanup.push(() => client.connection.close());
    const running = client.workflow.list({ query: `XcpbJobId = "nightly"` });
    const ids: string[] = [];
    for await (const w of running) ids.push(w.workflowId);
    await Promise.all(ids.map((id) => client.workflow.getHandle(id).terminate('test over')));
  });

  it('a namespace that does not exist: commands say so, setup creates it with 30 days of retention', async () => {
    const namespace = `absent-${randomUUID().slice(0, 8)}`;
    const env = { TEMPORAL_ADDRESS: temporalAddress(), TEMPORAL_NAMESPACE: namespace };
    const r = await runXcpb(['runs'], env);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      `xcpb runs: namespace "${namespace}" does not exist on this Temporal server: run \`xcpb server setup --namespace ${namespace}\``,
    );

    const setup = await runXcpb(['server', 'setup', '--namespace', namespace], {
      TEMPORAL_ADDRESS: temporalAddress(),
    });
    expect(setup.code, setup.stderr).toBe(0);
    expect(setup.stdout).toContain(`namespace ${namespace}: created (retention 30 days)`);
    const client = await testClient(namespace);
    cleanup.push(() => client.connection.close());
    const described = await client.workflowService.describeNamespace({ namespace });
    expect(Number(described.config?.workflowExecutionRetentionTtl?.seconds)).toBe(30 * 86_400);
    expect((await runXcpb(['runs', '--job', 'x'], env)).stdout).toContain('no runs');
  });
});
