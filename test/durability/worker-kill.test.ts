// kill -9 of the worker process (a real `xcpb worker` child) at each step of a delta run, then a new
// worker process: the run completes, no snapshot is leaked or taken twice, no temporary or merge
// state file stays on the remote, no backup is missing, and every chain rebuilt by qemu-img equals the
// disk at its snapshot. Each case has its own stack (simulator, remote, namespace, worker process) and
// the cases run concurrently: each waits out a heartbeat timeout (30 s on pool queues, 60 s on the
// main queue) before Temporal hands the killed attempt to the new worker.

import { watch } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runReportOf } from '../../client/run-result';
import type { RunReport } from '../../core/run-report';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { listJson } from '../helpers/remote-files';
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
const stacks: BackupStack[] = [];

afterAll(async () => {
  await stopAllWorkerProcesses();
  await Promise.all(stacks.map((s) => s.close()));
});

const scenario = (diskSize: string, blocks: number) =>
  labScenario({
    password: 'kill-test-secret',
    srSize: '8GiB',
    vms: [labVm('app', { tags: ['prod'], disks: [disk('app root', diskSize, 7, blocks)] })],
  });

interface Case {
  stack: BackupStack;
  worker: WorkerProcess;
  truths: Truths;
  vm: { uuid: string; disks: { uuid: string }[] };
  chainDir: string;
}

async function setUp(o: { diskSize: string; blocks: number; keep: number }): Promise<Case> {
  const stack = await startBackupStack({
    scenario: scenario(o.diskSize, o.blocks),
    jobs: [tagJob(JOB, 'prod', { schedules: dailySchedule(o.keep) })],
    workers: false,
  });
  stacks.push(stack);
  const worker = await WorkerProcess.start(stack);
  const vm = await stack.vm('app');
  const chainDir = path.join(vmDir(stack, 'nas', vm.uuid), 'vdis', JOB, vm.disks[0].uuid);
  return { stack, worker, truths: new Truths(stack), vm, chainDir };
}

/** A run with no fault; checked at once. */
async function plainRun(c: Case): Promise<void> {
  const report = await c.stack.runJob(JOB);
  expect(report.status, pretty(report)).toBe('success');
  await c.truths.checkNewest(c.vm.uuid, JOB);
}

/**
 * Starts a run, waits until `landed` says the step is under way, kills the worker with SIGKILL,
 * runs `afterKill` (the dead worker's state, the fault lifted), starts a new worker process and
 * waits for the run's result.
 */
async function runKilledAt(
  c: Case,
  what: string,
  landed: () => Promise<boolean>,
  afterKill: () => Promise<void>,
): Promise<RunReport> {
  const handle = await c.stack.startJob(JOB);
  await waitFor(what, landed, 90_000, 20);
  await c.worker.kill();
  await afterKill();
  c.worker = await WorkerProcess.start(c.stack);
  return runReportOf(handle);
}

/** The invariants after any run that completed: one job snapshot, nothing hidden, chains exact. */
async function expectCleanState(c: Case, expectedBackups: number): Promise<void> {
  const snapshots = await jobSnapshotsOf(c.stack, c.vm.uuid, JOB);
  expect(snapshots, 'exactly one job snapshot (the base of the next delta)').toHaveLength(1);
  expect(await allSnapshotsOf(c.stack, c.vm.uuid), 'no unlabelled snapshot').toHaveLength(1);
  expect(await hiddenFiles(c.stack, 'nas', c.vm.uuid), 'no temporary or state file').toEqual([]);
  expect(await leftoversBesideVm(c.stack, 'nas'), 'no lock or probe file').toEqual([]);
  // The newest backup (judged against the snapshot that remains, which its metadata names), then all.
  const newest = await c.truths.checkNewest(c.vm.uuid, JOB);
  expect(newest.metadata.vmSnapshot.uuid).toBe(snapshots[0].uuid);
  const kept = await c.truths.checkAll(c.vm.uuid, JOB);
  expect(kept, 'no backup missing').toHaveLength(expectedBackups);
}

const visibleVhds = async (dir: string) =>
  (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.vhd') && !n.startsWith('.'));
const temporaries = async (dir: string) =>
  (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('.') && n.includes('.tmp-'));

describe.concurrent('kill -9 of the worker process, then a new one: the run completes cleanly', () => {
  it('during the snapshot: the snapshot is found again, not taken twice', { timeout: 300_000 }, async () => {
    const c = await setUp({ diskSize: '16MiB', blocks: 4, keep: 3 });
    const control = c.stack.pool().control;
    await plainRun(c);
    await control.writeRandomBlocks(c.vm.disks[0].uuid, { count: 2, seed: 'before kill' });
    await control.delay('VM.snapshot', 3_000);
    await control.resetStats();
    const report = await runKilledAt(
      c,
      'a VM.snapshot in progress',
      async () => (await control.stats()).current.snapshot > 0,
      () => control.delay('VM.snapshot', 0),
    );
    expect(report.status, pretty(report)).toBe('success');
    expect((await control.stats()).calls['VM.snapshot'], 'one VM.snapshot for the run').toBe(1);
    expect(stepsOf(report, 'app', 'export')[0].detail).toMatch(/^delta from/);
    await expectCleanState(c, 2);
  });

  it('during a snapshot that outlasts the heartbeat timeout: the retry waits for it, no second one', {
    timeout: 300_000,
  }, async () => {
    const c = await setUp({ diskSize: '16MiB', blocks: 4, keep: 3 });
    const control = c.stack.pool().control;
    await plainRun(c);
    await control.writeRandomBlocks(c.vm.disks[0].uuid, { count: 2, seed: 'slow snapshot' });
    // Still running when Temporal retries (30 s heartbeat timeout): XAPI refuses a second snapshot
    // of the VM meanwhile (OTHER_OPERATION_IN_PROGRESS), and the retry then finds the first one.
    await control.delay('VM.snapshot', 36_000);
    await control.resetStats();
    const report = await runKilledAt(
      c,
      'a VM.snapshot in progress',
      async () => (await control.stats()).current.snapshot > 0,
      () => control.delay('VM.snapshot', 0),
    );
    expect(report.status, pretty(report)).toBe('success');
    expect(
      (await control.stats()).calls['VM.snapshot'],
      'the retry collided with the running snapshot',
    ).toBeGreaterThan(1);
    const snapshotUuid = stepsOf(report, 'app', 'snapshot').at(-1)?.detail?.split(' ')[1];
    expect((await allSnapshotsOf(c.stack, c.vm.uuid)).map((s) => s.uuid)).toEqual([snapshotUuid]);
    await expectCleanState(c, 2);
  });

  it('in the middle of a disk export: the partial file is replaced and removed', {
    timeout: 300_000,
  }, async () => {
    const c = await setUp({ diskSize: '24MiB', blocks: 6, keep: 3 });
    const control = c.stack.pool().control;
    await plainRun(c);
    await control.writeRandomBlocks(c.vm.disks[0].uuid, { count: 8, seed: 'big delta' });
    await control.throttle({ bytesPerSecond: 3 << 20 }); // ~16 MiB of delta: ~5 s
    let partial: string[] = [];
    const report = await runKilledAt(
      c,
      'an export under way with bytes in a temporary file',
      async () => {
        if ((await control.stats()).current.export_raw_vdi === 0) return false;
        const tmp = await temporaries(c.chainDir);
        const sizes = await Promise.all(tmp.map((t) => stat(path.join(c.chainDir, t)).then((s) => s.size)));
        return sizes.some((s) => s > 1 << 20);
      },
      async () => {
        partial = await temporaries(c.chainDir);
        await control.throttle({ bytesPerSecond: 0 });
      },
    );
    expect(partial, 'the killed export left a partial temporary file').not.toEqual([]);
    expect(report.status, pretty(report)).toBe('success');
    expect(stepsOf(report, 'app', 'export')[0].detail).toMatch(/^delta from/);
    await expectCleanState(c, 2);
  });

  it('between the last VHD and the metadata JSON: the JSON is written by the retry', {
    timeout: 300_000,
  }, async () => {
    const c = await setUp({ diskSize: '16MiB', blocks: 4, keep: 3 });
    const control = c.stack.pool().control;
    await plainRun(c);
    await control.writeRandomBlocks(c.vm.disks[0].uuid, { count: 2, seed: 'before metadata' });
    // VIF.get_record is called by the metadata activity only (the VM's networks go in the JSON).
    await control.delay('VIF.get_record', 3_000);
    await control.resetStats();
    let atKill = { vhds: 0, jsons: 0 };
    const report = await runKilledAt(
      c,
      'the metadata activity under way',
      async () => ((await control.stats()).calls['VIF.get_record'] ?? 0) > 0,
      async () => {
        atKill = {
          vhds: (await visibleVhds(c.chainDir)).length,
          jsons: (await listJson(c.stack.remoteDir('nas'), c.vm.uuid)).length,
        };
        await control.delay('VIF.get_record', 0);
      },
    );
    expect(atKill, 'killed with the new VHD written and its JSON not').toEqual({ vhds: 2, jsons: 1 });
    expect(report.status, pretty(report)).toBe('success');
    await expectCleanState(c, 2);
  });

  it('in the middle of a retention merge: the merge resumes from its state file', {
    timeout: 300_000,
  }, async () => {
    const c = await setUp({ diskSize: '256MiB', blocks: 8, keep: 2 });
    const control = c.stack.pool().control;
    await plainRun(c);
    // A large delta, so merging it into the full takes long enough to be killed in the middle.
    await control.writeRandomBlocks(c.vm.disks[0].uuid, { count: 100, seed: 'large delta' });
    await plainRun(c);
    await control.writeRandomBlocks(c.vm.disks[0].uuid, { count: 1, seed: 'third run' });
    await mkdir(c.chainDir, { recursive: true });
    // inotify, not polling: the kill follows the state file's creation within milliseconds.
    let seen: string | undefined;
    const watcher = watch(c.chainDir, (_event, name) => {
      if (seen === undefined && name?.endsWith('.merge.json')) {
        seen = name;
        c.worker.child.kill('SIGKILL');
      }
    });
    let stateAtKill: string[] = [];
    const report = await runKilledAt(
      c,
      'a merge state file',
      async () => seen !== undefined,
      async () => {
        watcher.close();
        stateAtKill = (await readdir(c.chainDir)).filter((n) => n.endsWith('.merge.json'));
      },
    ).finally(() => watcher.close());
    expect(seen).toBeDefined();
    expect(stateAtKill, 'killed while the merge was under way').toEqual([seen]);
    expect(report.status, pretty(report)).toBe('success');
    const retention = stepsOf(report, 'app', 'retention')[0];
    expect(retention.status).toBe('success');
    await expectCleanState(c, 2);
    // The oldest kept backup is now a full VHD on its own.
    const oldest = (await listJson(c.stack.remoteDir('nas'), c.vm.uuid))[0].replace('.json', '');
    expect(await visibleVhds(c.chainDir)).toContain(`${oldest}.vhd`);
    expect((await visibleVhds(c.chainDir)).length).toBe(2);
  });
});
