// The production path, for real: a Temporal cluster on PostgreSQL (built from the Go module proxy,
// configured by deploy/temporal/cluster.yaml, the file docker-compose.yml mounts) with TLS and client
// certificates on its frontend. On it, as a user would: `xcpb server setup`, `xcpb apply`, a worker
// process, delta backups, a kill -9 of the worker mid-export and a restart of the Temporal server
// mid-run (both complete with exact chains and no leaked snapshot), a scheduled run, `xcpb runs` and
// a restore compared byte for byte. Needs PostgreSQL and Go: without them it fails saying so.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReportOf } from '../../client/run-result';
import {
  allSnapshotsOf,
  hiddenFiles,
  jobSnapshotsOf,
  leftoversBesideVm,
  pretty,
  stepsOf,
  Truths,
  vmDir,
  waitFor,
} from '../durability/checks';
import { type BackupStack, readAll, startBackupStack } from '../helpers/backup-stack';
import { runXcpb } from '../helpers/cli';
import { dailySchedule, disk, labScenario, labVm, tagJob } from '../helpers/scenarios';
import { stopAllWorkerProcesses, WorkerProcess } from '../helpers/worker-process';
import { startTemporalCluster, type TemporalCluster } from './harness';

const JOB = 'nightly';
const NAMESPACE = 'backups';
let dir: string;
let cluster: TemporalCluster;
let stack: BackupStack;
let env: Record<string, string>;
let worker: WorkerProcess;
let truths: Truths;
let vm: { uuid: string; disks: { uuid: string }[] };

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-cluster-'));
  cluster = await startTemporalCluster(dir, (line) => console.log(`[cluster] ${line}`));
  env = { ...cluster.env, TEMPORAL_NAMESPACE: NAMESPACE };
}, 900_000);

afterAll(async () => {
  await stopAllWorkerProcesses();
  await stack?.close();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ready = () => stack && worker;

describe('a PostgreSQL-backed Temporal cluster with TLS', () => {
  it('a wrong CA or no client certificate: a clear error naming the address', async () => {
    const address = cluster.target.address;
    const wrongCa = await runXcpb(['server', 'setup'], { ...env, TEMPORAL_TLS_CA: cluster.tls.otherCa });
    expect(wrongCa.code).toBe(1);
    expect(wrongCa.stderr.trim()).toBe(
      `xcpb server setup: cannot connect to Temporal at ${address} (TLS): the server's certificate is not signed by the CA given (unable to verify the first certificate); check --tls-ca / TEMPORAL_TLS_CA`,
    );
    const noCert = await runXcpb(['runs'], { ...env, TEMPORAL_TLS_CERT: '', TEMPORAL_TLS_KEY: '' });
    expect(noCert.code).toBe(1);
    expect(noCert.stderr).toContain(
      `cannot connect to Temporal at ${address} (TLS): the server requires a client certificate`,
    );
    const plain = await runXcpb(['runs'], { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: NAMESPACE });
    expect(plain.stderr).toContain(`cannot connect to Temporal at ${address}: the server speaks TLS`);
  });

  it('xcpb server setup prepares a new namespace; before it commands name it, after it they work', async () => {
    const before = await runXcpb(['runs'], env);
    expect(before.stderr.trim()).toBe(
      `xcpb runs: namespace "${NAMESPACE}" does not exist on this Temporal server: run \`xcpb server setup --namespace ${NAMESPACE}\``,
    );
    const setup = await runXcpb(['server', 'setup'], env);
    expect(setup.code, setup.stderr).toBe(0);
    expect(setup.stdout).toContain(`namespace ${NAMESPACE}: created (retention 30 days)`);
    expect(setup.stdout).toContain('search attributes: added XcpbJobId');
    expect(setup.stdout).toContain('ready for xcp-backup');
    const again = await runXcpb(['server', 'setup'], env);
    expect(again.stdout).toContain('search attributes: all 6 present');

    stack = await startBackupStack({
      scenario: labScenario({
        password: 'cluster-test-secret',
        vms: [labVm('app', { tags: ['prod'], disks: [disk('app root', '24MiB', 9, 12)] })],
      }),
      jobs: [tagJob(JOB, 'prod', { schedules: dailySchedule(4) })],
      workers: false,
      temporal: { ...cluster.target, namespace: NAMESPACE },
    });
    const config = await stack.writeConfigFile();
    const applied = await runXcpb(['apply', config], env);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain(`+ create xcpb:${JOB}:daily`);
    const schedules = await runXcpb(['schedules', '--json'], env);
    const listed = JSON.parse(schedules.stdout) as { scheduleId: string; nextRunTimes: string[] }[];
    expect(listed.map((s) => s.scheduleId)).toEqual([`xcpb:${JOB}:daily`]);
    expect(listed[0].nextRunTimes.length).toBeGreaterThan(0);

    worker = await WorkerProcess.start(stack, { address: cluster.target.address, namespace: NAMESPACE, env });
    expect(worker.output).toContain(`on ${cluster.target.address} (${NAMESPACE})`);
    vm = await stack.vm('app');
    truths = new Truths(stack);
    const report = await stack.runJob(JOB);
    expect(report.status, pretty(report)).toBe('success');
    await truths.checkNewest(vm.uuid, JOB);
  });

  it('kill -9 of the worker mid-export: a new worker finishes the run, exact and clean', async () => {
    expect(ready()).toBeTruthy();
    const control = stack.pool().control;
    await control.writeRandomBlocks(vm.disks[0].uuid, { count: 4, seed: 'before kill' });
    await control.throttle({ bytesPerSecond: 1 << 20 });
    const handle = await stack.startJob(JOB);
    await waitForTempFile();
    await worker.kill();
    await control.throttle({ bytesPerSecond: 0 });
    worker = await WorkerProcess.start(stack, { address: cluster.target.address, namespace: NAMESPACE, env });
    const report = await runReportOf(handle);
    expect(report.status, pretty(report)).toBe('success');
    expect(stepsOf(report, 'app', 'export')[0].detail).toMatch(/^delta from/);
    await expectClean();
  });

  it('a restart of the Temporal server mid-run: the worker reconnects and the run completes', async () => {
    expect(ready()).toBeTruthy();
    const control = stack.pool().control;
    await control.writeRandomBlocks(vm.disks[0].uuid, { count: 4, seed: 'before restart' });
    await control.throttle({ bytesPerSecond: 1 << 20 });
    const handle = await stack.startJob(JOB);
    await waitForTempFile();
    await cluster.stopServer();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(worker.running, 'the worker survives the outage').toBe(true);
    await cluster.startServer();
    await control.throttle({ bytesPerSecond: 0 });
    const report = await waitFor(
      'the run result',
      async () => await runReportOf(handle).catch(() => undefined),
      240_000,
      1_000,
    );
    expect(report.status, pretty(report)).toBe('success');
    expect(worker.running).toBe(true);
    await expectClean();
  });

  it('a scheduled run goes through the cluster; xcpb runs lists the runs by job', async () => {
    expect(ready()).toBeTruthy();
    const schedule = stack.client.schedule.getHandle(`xcpb:${JOB}:daily`);
    await schedule.trigger();
    const scheduled = await waitFor(
      'the scheduled run',
      async () => (await schedule.describe()).info.recentActions.at(-1)?.action.workflow.workflowId,
      60_000,
      500,
    );
    const report = await runReportOf(stack.client.workflow.getHandle(scheduled));
    expect(report.status, pretty(report)).toBe('success');
    await expectClean();
    const runs = await waitFor(
      'the runs in visibility',
      async () => {
        const r = await runXcpb(['runs', '--job', JOB, '--json'], env);
        const list = JSON.parse(r.stdout || '[]') as { workflowId: string }[];
        return list.length >= 4 ? list : undefined;
      },
      60_000,
      1_000,
    );
    expect(runs.map((r) => r.workflowId)).toContain(scheduled);
  });

  it('xcpb restore brings the newest backup back byte for byte', async () => {
    expect(ready()).toBeTruthy();
    const newest = await truths.checkNewest(vm.uuid, JOB);
    const truth = await readAll(await stack.pool().control.readVdi(newest.disks[0].snapshotVdi));
    const r = await runXcpb(
      [
        'restore',
        `nas:${vm.uuid}/${newest.ts}`,
        '--config',
        await stack.writeConfigFile(),
        '--pool',
        'lab',
        '--sr',
        'Local',
        '--json',
      ],
      env,
    );
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const result = JSON.parse(r.stdout) as { vdis: { uuid: string }[] };
    expect(result.vdis).toHaveLength(1);
    const restored = await readAll(await stack.pool().control.readVdi(result.vdis[0].uuid));
    expect(restored.equals(truth)).toBe(true);
  });
});

async function waitForTempFile(): Promise<void> {
  const chainDir = path.join(vmDir(stack, 'nas', vm.uuid), 'vdis', JOB, vm.disks[0].uuid);
  await waitFor(
    'the export under way',
    async () =>
      (await stack.pool().control.stats()).current.export_raw_vdi > 0 &&
      (await readdir(chainDir).catch(() => [] as string[])).some((n) => n.includes('.tmp-')),
    90_000,
    20,
  );
}

async function expectClean(): Promise<void> {
  expect(await jobSnapshotsOf(stack, vm.uuid, JOB), 'one job snapshot').toHaveLength(1);
  expect(await allSnapshotsOf(stack, vm.uuid), 'no leaked snapshot').toHaveLength(1);
  expect(await hiddenFiles(stack, 'nas', vm.uuid), 'no temporary or state file').toEqual([]);
  expect(await leftoversBesideVm(stack, 'nas'), 'no lock or probe file').toEqual([]);
  await truths.checkNewest(vm.uuid, JOB);
  await truths.checkAll(vm.uuid, JOB);
}
