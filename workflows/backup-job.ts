// One run of a job: select the VMs now, back each up in a child workflow within a sliding window
// of `concurrency`, and aggregate the run report.
import {
  CancellationScope,
  ChildWorkflowCancellationType,
  defineQuery,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ReportsConfig } from '../core/config/schema';
import { BACKUP_JOB_WORKFLOW, type BackupJobInput } from '../core/job-input';
import { FAILURE_TYPES, failedWith, reportOfFailure } from '../core/outcome-failure';
import { reportWanted } from '../core/report-text';
import { type RunReport, runOutcome, type VmReport, vmBytes } from '../core/run-report';
import { keywordListIfItFits, SA } from '../core/search-attributes';
import { BackupJobInputSchema, type BackupJobStartInput, parseStartInput } from '../core/start-contract';
import { MAIN_QUEUE } from '../core/task-queues';
import { runProgress, runStartDetails, vmDetails, vmSummary } from '../core/ui-text';
import type { SelectedVm } from '../core/vm-selection';
import { backupVm } from './backup-vm';
import { takeJobSlot } from './job-guard';
import { mainActivities, reportActivities } from './options';
import { errorInfo, StepRecorder } from './report';

export const runReportQuery = defineQuery<RunReport>('report');

export async function backupJob(start: BackupJobStartInput): Promise<RunReport> {
  // The start contract first: a bad input fails here, naming the field, before anything runs.
  const input = parseStartInput(BACKUP_JOB_WORKFLOW, BackupJobInputSchema, start);
  const { job } = input;
  const { workflowId } = workflowInfo();
  const report: RunReport = {
    workflowId,
    jobId: job.id,
    scheduleId: input.scheduleId,
    mode: job.mode,
    status: 'running',
    start: Date.now(),
    vms: [],
  };
  setHandler(runReportQuery, () => report);
  upsertSearchAttributes([
    { key: SA.jobId, value: job.id },
    { key: SA.mode, value: job.mode },
    ...(input.scheduleId ? [{ key: SA.scheduleId, value: input.scheduleId }] : []),
  ]);
  // From the first moment, for every start: a raw `temporal workflow start` carries no static summary.
  setCurrentDetails(runStartDetails(input));

  const slot = await takeJobSlot(job.id);
  if ('heldBy' in slot) {
    refused(report, slot.heldBy);
    // A refused start is a failed run (Failed in Temporal, the report in the details); a skip completes.
    if (report.status === 'failure') throw failedWith(FAILURE_TYPES.run, report.reason!, report);
    return report;
  }
  try {
    const selection = await mainActivities().selectVms({ vms: job.vms });
    for (const uuid of selection.missing) {
      report.vms.push({
        vmUuid: uuid,
        vmName: '?',
        poolId: '?',
        workflowId: '',
        status: 'failure',
        start: Date.now(),
        end: Date.now(),
        error: { code: 'VM_NOT_FOUND', message: `VM ${uuid} named by the job is in no configured pool` },
        steps: [],
      });
    }
    const poolIds = keywordListIfItFits([...new Set(selection.selected.map((v) => v.poolId))]);
    const vmUuids = keywordListIfItFits(selection.selected.map((v) => v.uuid));
    upsertSearchAttributes([
      ...(poolIds ? [{ key: SA.poolIds, value: poolIds }] : []),
      ...(vmUuids ? [{ key: SA.vmUuids, value: vmUuids }] : []),
    ]);
    if (selection.selected.length === 0 && report.vms.length === 0) {
      report.reason = `no VM matches the job's selection${selection.excluded.length ? ` (${selection.excluded.length} excluded)` : ''}`;
    }
    await runWindowed(selection.selected, job.concurrency, (vm) => backupOneVm(input, vm, report));
    report.status = runOutcome(report.vms);
  } catch (err) {
    report.status = 'failure';
    report.reason = errorInfo(err).message;
    if (isCancellation(err)) {
      upsertSearchAttributes([{ key: SA.outcome, value: 'cancelled' }]);
      throw err;
    }
  } finally {
    report.end = Date.now();
    await CancellationScope.nonCancellable(() => slot.release());
  }
  upsertSearchAttributes([{ key: SA.outcome, value: report.status }]);
  if (job.reports && reportWanted(job.reports.when, report.status)) await sendReports(job.reports, report);
  // Failed in Temporal when any VM failed (or the selection did), the report in the details.
  if (report.status === 'failure') throw failedWith(FAILURE_TYPES.run, runFailureMessage(report), report);
  return report;
}

function runFailureMessage(report: RunReport): string {
  const failed = report.vms.filter((v) => v.status === 'failure');
  if (failed.length === 0) return `run of job ${report.jobId} failed: ${report.reason ?? 'unknown reason'}`;
  const names = failed.slice(0, 5).map((v) => v.vmName);
  const more = failed.length > names.length ? ` and ${failed.length - names.length} more` : '';
  return `run of job ${report.jobId}: ${failed.length} of ${report.vms.length} VMs failed (${names.join(', ')}${more})`;
}

/**
 * Another run of the job is in flight: a scheduled run is skipped (as the schedule's overlap policy
 * would), any other start is refused; both name the run that holds the job.
 */
function refused(report: RunReport, heldBy: string): RunReport {
  const scheduled = workflowInfo().searchAttributes?.TemporalScheduledById !== undefined;
  report.status = scheduled ? 'skipped' : 'failure';
  report.reason = `${scheduled ? 'skipped' : 'refused'}: job "${report.jobId}" already has a run in flight: ${heldBy}`;
  report.end = Date.now();
  upsertSearchAttributes([{ key: SA.outcome, value: report.status }]);
  // A refused start is a failed run in Temporal (status tells the truth); a skipped one completes.
  if (report.status === 'failure') throw failedWith(FAILURE_TYPES.run, report.reason, report);
  return report;
}

async function backupOneVm(input: BackupJobInput, vm: SelectedVm, report: RunReport): Promise<void> {
  const workflowId = `${workflowInfo().workflowId}/vm:${vm.uuid}`;
  const entry: VmReport = {
    vmUuid: vm.uuid,
    vmName: vm.name,
    poolId: vm.poolId,
    workflowId,
    status: 'running',
    start: Date.now(),
    steps: [],
  };
  report.vms.push(entry);
  showProgress(report);
  try {
    Object.assign(
      entry,
      await executeChild(backupVm, {
        workflowId,
        taskQueue: MAIN_QUEUE,
        args: [{ ...input, vm, runId: workflowInfo().workflowId }],
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
    else Object.assign(entry, { status: 'failure', end: Date.now(), error: errorInfo(err) });
    if (isCancellation(err)) throw err;
  } finally {
    showProgress(report);
  }
}

/**
 * Email and webhook, at once, each retried by Temporal for a few minutes; their outcome goes into
 * the report (`reports`), and whatever happens the run's outcome stays what its VMs made it.
 */
async function sendReports(reports: ReportsConfig, report: RunReport): Promise<void> {
  const sent = { ...report, vms: report.vms };
  report.reports = [];
  const steps = new StepRecorder(report.reports);
  const send = reportActivities(`report of ${report.jobId} (${report.status})`);
  const attempts: Promise<unknown>[] = [];
  if (reports.email.length > 0)
    attempts.push(
      steps.run('email', () => send.sendReportEmail({ report: sent, to: reports.email }), {
        target: reports.email.join(', '),
        done: (r) => ({ detail: `accepted by the mail server for ${r.accepted.join(', ')}` }),
      }),
    );
  if (reports.webhook) {
    const url = reports.webhook;
    attempts.push(
      steps.run('webhook', () => send.postReportWebhook({ report: sent, url }), {
        target: new URL(url).host,
        done: (r) => ({ detail: `HTTP ${r.status}` }),
      }),
    );
  }
  await Promise.allSettled(attempts); // failures are recorded as failed steps
}

/** The run's current details in the Web UI: VMs done / failed / running, bytes exported. */
function showProgress(report: RunReport): void {
  const bytes = report.vms.reduce((n, vm) => n + vmBytes(vm), 0);
  setCurrentDetails(runProgress(report.vms, bytes));
}

/** Runs `fn` over `items` with at most `limit` in flight (0 = all at once), in order. */
async function runWindowed<T>(
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
