// Cancelling a delta run during a (throttled) disk export: the export stops (cancellation reaches it
// through its heartbeat), the run's snapshot, never exported, is deleted while the previous exported
// base stays, the temporary file is removed, the VM lock is released, and the next run works: a delta
// from that base whose chain rebuilt by qemu-img equals the disk.

import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReportOf } from '../../client/run-result';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { listJson } from '../helpers/remote-files';
import { disk, labScenario, labVm, tagJob } from '../helpers/scenarios';
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
} from './checks';

const JOB = 'nightly';
let stack: BackupStack;
let truths: Truths;
let vm: { uuid: string; disks: { uuid: string }[] };
let chainDir: string;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: labScenario({
      password: 'cancel-secret-pw',
      vms: [labVm('app', { tags: ['prod'], disks: [disk('app root', '32MiB', 3, 6)] })],
    }),
    jobs: [tagJob(JOB, 'prod')],
  });
  truths = new Truths(stack);
  vm = await stack.vm('app');
  chainDir = path.join(vmDir(stack, 'nas', vm.uuid), 'vdis', JOB, vm.disks[0].uuid);
});
afterAll(() => stack?.close());

const control = () => stack.pool().control;
const names = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).sort();

describe('cancelling a run during an export', () => {
  it('stops the export, deletes the unexported snapshot, keeps the base, cleans the remote; the next run works', {
    timeout: 180_000,
  }, async () => {
    const first = await stack.runJob(JOB);
    expect(first.status, pretty(first)).toBe('success');
    await truths.checkNewest(vm.uuid, JOB);
    const [base] = await jobSnapshotsOf(stack, vm.uuid, JOB);
    const filesBefore = await names(chainDir);

    await control().writeRandomBlocks(vm.disks[0].uuid, { count: 10, seed: 'cancelled run' });
    await control().throttle({ bytesPerSecond: 1 << 20 }); // ~20 MiB of delta: ~20 s
    const handle = await stack.startJob(JOB);
    await waitFor(
      'the export under way, writing its temporary file',
      async () =>
        (await control().stats()).current.export_raw_vdi > 0 &&
        (await names(chainDir)).some((n) => n.includes('.tmp-')),
      60_000,
    );
    const runSnapshot = (await allSnapshotsOf(stack, vm.uuid)).find((s) => s.uuid !== base.uuid);
    expect(runSnapshot, 'the cancelled run took its snapshot').toBeDefined();
    await handle.cancel();

    const outcome = await runReportOf(handle).then(
      (r) => r,
      (e: unknown) => e,
    );
    expect(outcome).toBeInstanceOf(WorkflowFailedError);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    // Cancellation reaches the export at its next heartbeat: the simulator's export stops, bounded
    // by the heartbeat timeout (30 s); the throttled export alone would take ~20 s more.
    await waitFor(
      'the export to stop',
      async () => (await control().stats()).current.export_raw_vdi === 0,
      30_000,
    );
    await control().throttle({ bytesPerSecond: 0 });

    // The child was cancelled, and its cleanup started only once the export had stopped: no snapshot
    // deleted and no lock released under a still-streaming export.
    const childHandle = stack.client.workflow.getHandle(`${handle.workflowId}/vm:${vm.uuid}`);
    expect((await childHandle.describe()).status.name).toBe('CANCELLED');
    const events = (await childHandle.fetchHistory()).events ?? [];
    const exportScheduled = events.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'exportDisk',
    );
    const exportCancelled = events.findIndex(
      (e) =>
        String(e.activityTaskCanceledEventAttributes?.scheduledEventId) === String(exportScheduled?.eventId),
    );
    const cleanupScheduled = events.findIndex(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'cleanupSnapshots',
    );
    expect(exportCancelled, 'the export acknowledged its cancellation').toBeGreaterThan(0);
    expect(cleanupScheduled, 'the cleanup ran').toBeGreaterThan(0);
    expect(cleanupScheduled, 'the cleanup started after the export stopped').toBeGreaterThan(exportCancelled);
    expect((await jobSnapshotsOf(stack, vm.uuid, JOB)).map((s) => s.uuid)).toEqual([base.uuid]);
    expect(
      (await allSnapshotsOf(stack, vm.uuid)).map((s) => s.uuid),
      'the run snapshot deleted',
    ).toEqual([base.uuid]);
    await waitFor(
      'the temporary file to be gone',
      async () => (await hiddenFiles(stack, 'nas', vm.uuid)).length === 0,
      30_000,
    );
    expect(await names(chainDir), 'nothing new in the chain folder').toEqual(filesBefore);
    expect(await listJson(stack.remoteDir('nas'), vm.uuid)).toHaveLength(1);
    expect(await leftoversBesideVm(stack, 'nas'), 'the VM lock released').toEqual([]);

    const next = await stack.runJob(JOB);
    expect(next.status, pretty(next)).toBe('success');
    expect(stepsOf(next, 'app', 'export')[0].detail).toMatch(/^delta from/);
    await truths.checkNewest(vm.uuid, JOB);
    await truths.checkAll(vm.uuid, JOB);
    expect(await jobSnapshotsOf(stack, vm.uuid, JOB)).toHaveLength(1);
    expect(await hiddenFiles(stack, 'nas', vm.uuid)).toEqual([]);
    expect(await leftoversBesideVm(stack, 'nas')).toEqual([]);
  });
});
