// Injected XAPI errors, through the simulator's control API, against real workers and Temporal:
// a transient error at any step is retried and the run succeeds; a permanent one fails that VM at
// once with the XAPI code in its report while the other VM is backed up; an export stream cut
// midway is exported again from the start with the same snapshot. After each run the chains rebuilt
// by qemu-img equal the snapshots and each VM keeps exactly one job snapshot.

import { type ApplicationFailure, type Client, WorkflowFailedError } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProgress } from '../../cli/report-format';
import { getRunReport, getRunState } from '../../client/backup-client';
import { runReportOf, vmReportOf } from '../../client/run-result';
import { inlineReportOf, type RunReport, type RunResult } from '../../core/run-report';
import {
  allSnapshotsOf,
  dailySchedule,
  hiddenFiles,
  jobSnapshotsOf,
  pretty,
  stepsOf,
  Truths,
} from '../durability/checks';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { runXcpb } from '../helpers/cli';
import { eventually } from '../helpers/eventually';
import { listJson } from '../helpers/remote-files';
import { disk, labScenario, labVm } from '../helpers/scenarios';
import { listWorkflows, temporalAddress } from '../helpers/temporal';

const JOB = 'nightly';
let stack: BackupStack;
let truths: Truths;
const vms: Record<string, { uuid: string; disks: { uuid: string }[] }> = {};

const scenario = labScenario({
  password: 'faults-secret-pw',
  vms: ['alpha', 'beta'].map((name, i) =>
    labVm(name, { tags: ['prod'], disks: [disk(`${name} root`, '12MiB', 10 + i, 4)] }),
  ),
});

beforeAll(async () => {
  stack = await startBackupStack({
    scenario,
    jobs: [
      {
        id: JOB,
        mode: 'delta',
        vms: { tags: ['prod'] },
        remotes: ['nas'],
        concurrency: 1,
        schedules: dailySchedule(10),
      },
    ],
  });
  truths = new Truths(stack);
  for (const name of ['alpha', 'beta']) vms[name] = await stack.vm(name);
});
afterAll(() => stack?.close());

const control = () => stack.pool().control;

/** Changes both disks, runs the job with the stats reset, returns the report and the XAPI call counts. */
async function run(): Promise<{ report: RunReport; calls: Record<string, number>; workflowId: string }> {
  for (const [name, vm] of Object.entries(vms))
    await control().writeRandomBlocks(vm.disks[0].uuid, { count: 1, seed: `${name} ${Date.now()}` });
  await control().resetStats();
  const handle = await stack.startJob(JOB);
  const report = await runReportOf(handle);
  return { report, calls: (await control().stats()).calls, workflowId: handle.workflowId };
}

/** One job snapshot per VM, nothing hidden on the remote, the newest backup exact, every older one too. */
async function expectHealthy(name: string): Promise<void> {
  const vm = vms[name];
  expect(await jobSnapshotsOf(stack, vm.uuid, JOB), `${name}: one job snapshot`).toHaveLength(1);
  expect(await allSnapshotsOf(stack, vm.uuid), `${name}: no other snapshot`).toHaveLength(1);
  expect(await hiddenFiles(stack, 'nas', vm.uuid)).toEqual([]);
  await truths.checkNewest(vm.uuid, JOB);
  await truths.checkAll(vm.uuid, JOB);
}

/**
 * The attempt that ended each activity of a VM's child workflow, by activity type (a history records
 * one ActivityTaskStarted per activity, carrying the last attempt's number; a local activity, one
 * marker whose data carries it).
 */
async function activityAttempts(client: Client, childId: string): Promise<Record<string, number[]>> {
  const history = await client.workflow.getHandle(childId).fetchHistory();
  const types = new Map<string, string>();
  const out: Record<string, number[]> = {};
  for (const e of history.events ?? []) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) types.set(String(e.eventId), scheduled.activityType?.name ?? '?');
    const marker = e.markerRecordedEventAttributes;
    const local =
      marker?.markerName === 'core_local_activity' ? marker.details?.data?.payloads?.[0] : undefined;
    if (local) {
      const { activity_type: type, attempt } = defaultPayloadConverter.fromPayload<{
        activity_type: string;
        attempt: number;
      }>(local as Payload);
      out[type] = [...(out[type] ?? []), attempt];
    }
    const started = e.activityTaskStartedEventAttributes;
    if (started) {
      const type = types.get(String(started.scheduledEventId)) ?? '?';
      out[type] = [...(out[type] ?? []), started.attempt ?? 1];
    }
  }
  return out;
}

const childId = (report: RunReport, name: string) => report.vms.find((v) => v.vmName === name)!.workflowId;

describe('injected XAPI errors', () => {
  it('first run, no fault: both VMs backed up', async () => {
    const { report } = await run();
    expect(report.status, pretty(report)).toBe('success');
    for (const name of ['alpha', 'beta']) await expectHealthy(name);
  });

  it('a transient error on VM.snapshot is retried; one snapshot per VM', async () => {
    await control().injectFault({ method: 'VM.snapshot', code: 'SR_BACKEND_FAILURE_44', times: 2 });
    const { report, calls } = await run();
    expect(report.status, pretty(report)).toBe('success');
    // 2 refused calls, then one snapshot per VM.
    expect(calls['VM.snapshot']).toBe(4);
    const attempts = await activityAttempts(stack.client, childId(report, 'alpha'));
    expect(attempts.takeSnapshot, 'takeSnapshot succeeded at its 3rd attempt').toEqual([3]);
    for (const name of ['alpha', 'beta']) await expectHealthy(name);
  });

  it('while a step is retried, the run shows it as it happens (xcpb run, runs show --follow)', async () => {
    await control().injectFault({ method: 'VM.snapshot', code: 'SR_BACKEND_FAILURE_44', times: 3 });
    const handle = await stack.startJob(JOB);
    const seen = await eventually(async () => {
      const { report } = await getRunState(stack.client, handle.workflowId, { liveBytes: true });
      const retrying = report.vms.find((vm) => vm.detail?.startsWith('retrying'));
      expect(retrying?.detail).toMatch(/^retrying takeSnapshot \(attempt [2-4]\): .*SR_BACKEND_FAILURE_44/);
      return retrying!;
    }, 30_000);
    expect(
      formatProgress({ ...(await getRunReport(stack.client, handle.workflowId)), vms: [seen] })[0],
    ).toContain('retrying takeSnapshot');
    const report = await runReportOf(handle);
    expect(report.status, pretty(report)).toBe('success');
    for (const name of ['alpha', 'beta']) await expectHealthy(name);
  });

  it('a transient error on VDI.get_by_uuid in the export is retried', async () => {
    await control().injectFault({ method: 'VDI.get_by_uuid', code: 'TOO_BUSY' });
    const { report, calls } = await run();
    expect(report.status, pretty(report)).toBe('success');
    expect(calls['VM.snapshot']).toBe(2);
    const attempts = await activityAttempts(stack.client, childId(report, 'alpha'));
    expect(attempts.exportDisk).toEqual([2]);
    for (const name of ['alpha', 'beta']) await expectHealthy(name);
    expect(stepsOf(report, 'alpha', 'export')[0].detail).toMatch(/^delta from/);
  });

  it('a transient error while the metadata is built is retried; the JSON is written once', async () => {
    // VIF.get_record: only the metadata activity reads the VM's VIFs.
    await control().injectFault({ method: 'VIF.get_record', code: 'TOO_BUSY', times: 2 });
    const before = await listJson(stack.remoteDir('nas'), vms.alpha.uuid);
    const { report } = await run();
    expect(report.status, pretty(report)).toBe('success');
    const attempts = await activityAttempts(stack.client, childId(report, 'alpha'));
    expect(attempts.writeMetadata).toEqual([3]);
    expect(await listJson(stack.remoteDir('nas'), vms.alpha.uuid)).toHaveLength(before.length + 1);
    for (const name of ['alpha', 'beta']) await expectHealthy(name);
  });

  it('a permanent error on VM.snapshot fails that VM at once with the XAPI code; the other succeeds', async () => {
    const before = Object.fromEntries(
      await Promise.all(
        Object.entries(vms).map(async ([n, vm]) => [n, await listJson(stack.remoteDir('nas'), vm.uuid)]),
      ),
    );
    const bases = Object.fromEntries(
      await Promise.all(
        Object.entries(vms).map(async ([n, vm]) => [n, (await jobSnapshotsOf(stack, vm.uuid, JOB))[0].uuid]),
      ),
    );
    await control().injectFault({
      method: 'VM.snapshot',
      code: 'OPERATION_BLOCKED',
      params: ['ref', 'blocked'],
    });
    const { report, calls, workflowId } = await run();
    expect(report.status, pretty(report)).toBe('failure');
    const failed = report.vms.filter((v) => v.status === 'failure');
    expect(failed, pretty(report)).toHaveLength(1);
    const [bad] = failed;
    const good = report.vms.find((v) => v !== bad)!;
    expect(good.status).toBe('success');
    const snapshotStep = stepsOf(report, bad.vmName, 'snapshot')[0];
    expect(snapshotStep).toMatchObject({ status: 'failure', error: { code: 'OPERATION_BLOCKED' } });
    expect(bad.error?.code).toBe('OPERATION_BLOCKED');
    // Not retried: one refused call for the bad VM, one snapshot for the good one.
    expect(calls['VM.snapshot']).toBe(2);
    const attempts = await activityAttempts(stack.client, bad.workflowId);
    expect(attempts.takeSnapshot).toEqual([1]);
    expect(attempts.exportDisk).toBeUndefined();
    // The failed VM: no new backup, its base snapshot kept, nothing leaked.
    expect(await listJson(stack.remoteDir('nas'), bad.vmUuid)).toEqual(before[bad.vmName]);
    expect((await jobSnapshotsOf(stack, bad.vmUuid, JOB)).map((s) => s.uuid)).toEqual([bases[bad.vmName]]);
    expect(await allSnapshotsOf(stack, bad.vmUuid)).toHaveLength(1);
    await truths.checkAll(bad.vmUuid, JOB);
    expect(await listJson(stack.remoteDir('nas'), good.vmUuid)).toHaveLength(before[good.vmName].length + 1);
    await expectHealthy(good.vmName);

    // Status tells the truth: the run and the bad VM's child are Failed in Temporal, the other
    // VM's child Completed, as `temporal workflow list` shows them.
    await eventually(async () => {
      const listed = await listWorkflows(
        stack.namespace,
        `XcpbJobId='${JOB}' AND WorkflowId STARTS_WITH '${workflowId}'`,
      );
      const status = Object.fromEntries(listed.map((w) => [w.workflowId, w.status]));
      expect(status).toEqual({
        [workflowId]: 'FAILED',
        [bad.workflowId]: 'FAILED',
        [good.workflowId]: 'COMPLETED',
      });
    }, 20_000);
    // The failure is ours, not retried, and carries the report: `xcpb runs show` prints all of it.
    const failure = await stack.client.workflow
      .getHandle(workflowId)
      .result()
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const cause = (failure as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toMatchObject({ type: 'XcpbRunFailed', nonRetryable: true });
    expect(cause.message).toContain(`1 of 2 VMs failed (${bad.vmName})`);
    // Its details: the run result, which carries a small run's VM reports (core/run-report).
    expect(cause.details?.[0]).toMatchObject({ counts: { vms: 2, failure: 1, success: 1 } });
    expect(inlineReportOf(cause.details?.[0] as RunResult)).toEqual(report);
    const shown = await runXcpb([
      'runs',
      'show',
      workflowId,
      '--json',
      '--address',
      temporalAddress(),
      '--namespace',
      stack.namespace,
    ]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toEqual(report);
    const vmFailure = await stack.client.workflow
      .getHandle(bad.workflowId)
      .result()
      .catch((e: unknown) => e);
    expect((vmFailure as WorkflowFailedError).cause).toMatchObject({ type: 'XcpbVmBackupFailed' });
    expect(await vmReportOf(stack.client.workflow.getHandle(bad.workflowId))).toEqual(bad);
  });

  it('an export cut after N bytes is exported again from the start, with the same snapshot', async () => {
    await control().cutExport({ afterBytes: 1 << 20 });
    const { report, calls } = await run();
    expect(report.status, pretty(report)).toBe('success');
    expect(calls['VM.snapshot'], 'one snapshot per VM, not one per attempt').toBe(2);
    const attempts = await Promise.all(
      ['alpha', 'beta'].map((n) => activityAttempts(stack.client, childId(report, n))),
    );
    expect(
      attempts.map((a) => a.exportDisk).sort(),
      'the cut export (whichever VM came first) was attempted twice',
    ).toEqual([[1], [2]]);
    for (const name of ['alpha', 'beta']) {
      const vm = report.vms.find((v) => v.vmName === name)!;
      const snapshotUuid = stepsOf(report, name, 'snapshot')[0].detail?.split(' ')[1];
      const backup = await truths.checkNewest(vms[name].uuid, JOB);
      expect(backup.metadata.vmSnapshot.uuid, `${vm.vmName}: the backup is of the run's one snapshot`).toBe(
        snapshotUuid,
      );
      await expectHealthy(name);
    }
  });
});
