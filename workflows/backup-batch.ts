// A batch of a run's VMs (issue 14: a job's history stays bounded whatever its size). A run gives
// its VMs to child workflows of at most BATCH_SIZE VMs each, one batch after the other; a batch
// backs each VM up in its own child (backupVm) within a sliding window of the job's `concurrency`,
// writes the VM reports outside Temporal's history as it goes (parts of the run's stored report)
// and returns only a bounded tally. Its history grows with its VMs (about 9 events each), never
// with the job's.
import {
  CancellationScope,
  ChildWorkflowCancellationType,
  defineQuery,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  setCurrentDetails,
  setHandler,
} from '@temporalio/workflow';
import { BACKUP_JOB_WORKFLOW } from '../core/job-input';
import { FAILURE_TYPES, reportOfFailure } from '../core/outcome-failure';
import { emptyTally, nowIso, tallyVm, type VmReport, type VmTally } from '../core/run-report';
import { SA } from '../core/search-attributes';
import type { BackupJobInput } from '../core/start-contract';
import { MAIN_QUEUE } from '../core/task-queues';
import { tallyProgress, vmDetails, vmSummary } from '../core/ui-text';
import type { SelectedVm } from '../core/vm-selection';
import { backupVm } from './backup-vm';
import { mainActivities } from './options';
import { errorInfo } from './report';

/** VMs per batch: ~9 history events each keeps a batch's history near 1,000 events. */
export const BATCH_SIZE = 100;
/** A batch writes its VM reports once this many bytes of them wait (a payload stays far from 512 KB). */
const PART_BYTES = 192 * 1024;
/** Finished VMs a batch still shows in its progress, beside the running ones. */
const RECENT_SHOWN = 10;

export interface BackupBatchInput {
  input: BackupJobInput;
  /** the run's workflow id: its VMs' children are `<run>/vm:<uuid>`, its report is stored under it */
  runWorkflowId: string;
  batch: number;
  vms: SelectedVm[];
  /** the remote the run's report goes to (the job's first); none: the worker's state folder */
  reportRemoteId?: string;
}

/** A batch's `progress` query: its tally so far, its running VMs and the last few finished. */
export interface BatchProgress extends VmTally {
  vms: VmReport[];
}

export const batchProgressQuery = defineQuery<BatchProgress>('progress');

export const batchWorkflowId = (runWorkflowId: string, batch: number) => `${runWorkflowId}/batch:${batch}`;

export async function backupBatch(b: BackupBatchInput): Promise<VmTally> {
  const tally = emptyTally();
  const running = new Map<string, VmReport>();
  const recent: VmReport[] = [];
  setHandler(batchProgressQuery, () => ({ ...tally, vms: [...running.values(), ...recent] }));

  const store = mainActivities(`run report of ${b.runWorkflowId}`);
  let unsaved: VmReport[] = [];
  let unsavedBytes = 0;
  let part = 0;
  // Not cancellable: a cancelled run's report still names every VM that ran.
  const save = () =>
    CancellationScope.nonCancellable(async () => {
      if (unsaved.length === 0) return;
      const vms = unsaved;
      unsaved = [];
      unsavedBytes = 0;
      await store.saveRunReportPart({
        remoteId: b.reportRemoteId,
        workflowId: b.runWorkflowId,
        batch: b.batch,
        part: part++,
        vms,
      });
    });

  try {
    await runWindowed(b.vms, b.input.job.concurrency, async (vm) => {
      const report = await runVm(b.input, vm, b.runWorkflowId, (entry) => {
        running.set(entry.workflowId, entry);
        setCurrentDetails(tallyProgress(tally, b.vms.length, running.size));
      });
      running.delete(report.workflowId);
      recent.push(report);
      if (recent.length > RECENT_SHOWN) recent.shift();
      tallyVm(tally, report);
      setCurrentDetails(tallyProgress(tally, b.vms.length, running.size));
      unsaved.push(report);
      unsavedBytes += JSON.stringify(report).length;
      if (unsavedBytes >= PART_BYTES) await save();
    });
  } finally {
    await save();
  }
  return tally;
}

/**
 * Backs one VM up in its child workflow and returns its report. `onStart` gets the report entry
 * as soon as the child is started for; the entry is then completed in place.
 */
export async function runVm(
  input: BackupJobInput,
  vm: SelectedVm,
  runWorkflowId: string,
  onStart: (entry: VmReport) => void,
): Promise<VmReport> {
  const workflowId = `${runWorkflowId}/vm:${vm.uuid}`;
  const entry: VmReport = {
    vmUuid: vm.uuid,
    vmName: vm.name,
    poolId: vm.poolId,
    workflowId,
    status: 'running',
    start: nowIso(),
    steps: [],
  };
  onStart(entry);
  try {
    Object.assign(
      entry,
      await executeChild(backupVm, {
        workflowId,
        taskQueue: MAIN_QUEUE,
        args: [{ ...input, vm, runId: runWorkflowId }],
        // The run waits for each VM's cleanup when it is cancelled.
        cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        staticSummary: vmSummary(vm, input.job),
        staticDetails: vmDetails(vm, input.job),
        memo: { vmName: vm.name },
        typedSearchAttributes: [
          { key: SA.jobId, value: input.job.id },
          { key: SA.mode, value: input.job.mode },
          { key: SA.poolIds, value: [vm.poolId] },
          { key: SA.vmUuids, value: [vm.uuid] },
        ],
      }),
    );
  } catch (err) {
    // A failed VM's child ends Failed with its report in the failure's details.
    const vmReport = reportOfFailure<VmReport>(err, FAILURE_TYPES.vm);
    if (vmReport) Object.assign(entry, vmReport);
    else Object.assign(entry, { status: 'failure', end: nowIso(), error: errorInfo(err) });
    if (isCancellation(err)) throw err;
  }
  return entry;
}

/** Runs `fn` over `items` with at most `limit` in flight (0 = all at once), in order. */
export async function runWindowed<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  const lanes = limit === 0 ? queue.length : Math.min(limit, queue.length);
  // Every lane is awaited, even after one failed (a cancellation): the run must not end while a VM
  // is still cleaning up after itself. The first failure is then rethrown.
  const settled = await Promise.allSettled(
    Array.from({ length: lanes }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
    }),
  );
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** The Web UI's one-line summary of a batch. */
export function batchSummary(runWorkflowId: string, batch: number, vms: readonly SelectedVm[]): string {
  return `${BACKUP_JOB_WORKFLOW} batch ${batch + 1} of ${runWorkflowId}: ${vms.length} VMs (${vms[0]?.name ?? ''} … ${vms.at(-1)?.name ?? ''})`;
}
