// The Temporal server is killed (kill -9, no clean shutdown) in the middle of a run (during a disk
// export) and starts again on the same port with the same database file: the worker process reconnects by itself (the SDK retries), the
// export that kept streaming meanwhile reports its result, and the run completes with a correct chain.
// The global setup's server is shared, so this test starts its OWN dev server.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runReportOf } from '../../client/run-result';
import { jobInput } from '../../core/job-input';
import { MAIN_QUEUE } from '../../core/task-queues';
import { freePort, startOwnedDevServer } from '../../server/dev-server';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { disk, labScenario, labVm, tagJob } from '../helpers/scenarios';
import { stopAllWorkerProcesses, WorkerProcess } from '../helpers/worker-process';
import {
  allSnapshotsOf,
  dailySchedule,
  hiddenFiles,
  jobSnapshotsOf,
  leftoversBesideVm,
  pretty,
  stepsOf,
  Truths,
  vmDir,
  waitFor,
} from './checks';

const JOB = 'nightly';
let dir: string;
let port: number;
let server: Awaited<ReturnType<typeof startOwnedDevServer>> | undefined;
let stack: BackupStack;
let connection: Connection | undefined;

const startServer = () =>
  startOwnedDevServer({
    cli: inject('temporalCli'),
    dbFile: path.join(dir, 'temporal.db'),
    logFile: path.join(dir, 'server.log'),
    port,
  });

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-restart-'));
  port = await freePort();
  server = await startServer();
  stack = await startBackupStack({
    scenario: labScenario({
      password: 'restart-secret-pw',
      vms: [labVm('app', { tags: ['prod'], disks: [disk('app root', '24MiB', 5, 12)] })],
    }),
    jobs: [tagJob(JOB, 'prod', { schedules: dailySchedule(3) })],
    workers: false,
  });
});
afterAll(async () => {
  await stopAllWorkerProcesses();
  await connection?.close().catch(() => {});
  await server?.stop();
  await stack?.close();
  await rm(dir, { recursive: true, force: true });
});

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('kill -9 of the Temporal server mid-run', () => {
  it('the worker reconnects and the run completes', { timeout: 240_000 }, async () => {
    const worker = await WorkerProcess.start(stack, { address: server!.address, namespace: 'default' });
    connection = await Connection.connect({ address: server!.address });
    const client = new Client({ connection, namespace: 'default' });
    const job = stack.config.jobs[0];
    const workflowId = `xcpb:${JOB}:restart-${Date.now()}`;
    const control = stack.pool().control;
    const vm = await stack.vm('app');
    const chainDir = path.join(vmDir(stack, 'nas', vm.uuid), 'vdis', JOB, vm.disks[0].uuid);

    await control.throttle({ bytesPerSecond: 2 << 20 }); // ~24 MiB: ~12 s
    await client.workflow.start('backupJob', {
      taskQueue: MAIN_QUEUE,
      workflowId,
      args: [jobInput(job, job.schedules[0])],
    });
    await waitFor(
      'the export under way',
      async () =>
        (await control.stats()).current.export_raw_vdi > 0 &&
        (await readdir(chainDir).catch(() => [] as string[])).some((n) => n.includes('.tmp-')),
    );
    const killed = server!;
    process.kill(killed.pid, 'SIGKILL');
    await waitFor('the server process gone', async () => !isAlive(killed.pid), 10_000);
    await killed.stop(); // closes its log file
    server = undefined;
    // Down for a while: the worker's polls and the export's heartbeats fail meanwhile.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(worker.running, 'the worker survives the outage').toBe(true);
    server = await startServer();
    await control.throttle({ bytesPerSecond: 0 });

    const report = await waitFor(
      'the run result',
      async () => await runReportOf(client.workflow.getHandle(workflowId)).catch(() => undefined),
      180_000,
      1_000,
    );
    expect(report.status, pretty(report)).toBe('success');
    expect(worker.running).toBe(true);
    expect(stepsOf(report, 'app', 'export')[0].status).toBe('success');

    const truths = new Truths(stack);
    await truths.checkNewest(vm.uuid, JOB);
    expect(await jobSnapshotsOf(stack, vm.uuid, JOB)).toHaveLength(1);
    expect(await allSnapshotsOf(stack, vm.uuid)).toHaveLength(1);
    expect(await hiddenFiles(stack, 'nas', vm.uuid)).toEqual([]);
    expect(await leftoversBesideVm(stack, 'nas')).toEqual([]);

    // And the restarted server keeps serving: a second run, a delta on the first.
    await control.writeRandomBlocks(vm.disks[0].uuid, { count: 2, seed: 'after restart' });
    const second = await runReportOf(
      await client.workflow.start('backupJob', {
        taskQueue: MAIN_QUEUE,
        workflowId: `${workflowId}-2`,
        args: [jobInput(job, job.schedules[0])],
      }),
    );
    expect(second.status, pretty(second)).toBe('success');
    expect(stepsOf(second, 'app', 'export')[0].detail).toMatch(/^delta from/);
    await truths.checkNewest(vm.uuid, JOB);
    const checked = await truths.checkAll(vm.uuid, JOB); // asserts each chain byte-exact
    console.log(
      `chaos temporal-kill: trials 1, runs completed 2, leaked snapshots ${(await allSnapshotsOf(stack, vm.uuid)).length - 1}, ` +
        `partial files ${(await hiddenFiles(stack, 'nas', vm.uuid)).length}, chains checked ${checked.length}, mismatched 0`,
    );
  });
});
