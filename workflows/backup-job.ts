// One run of a job: select the VMs now, back them up in batches of child workflows (each VM in its
// own child within a sliding window of `concurrency`), store the full run report outside the
// history and end with a bounded summary (issue 14: history and payloads bounded whatever the
// job's size). Runs started before batches (no `vm-batches` patch marker) replay the one-level
// code at the end of this file.
import {
  CancellationScope,
  ChildWorkflowCancellationType,
  defineQuery,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ReportsConfig } from '../core/config/schema';
import { BACKUP_JOB_WORKFLOW, type BackupJobInput } from '../core/job-input';
import { FAILURE_TYPES, failedWith } from '../core/outcome-failure';
import { reportWanted } from '../core/report-text';
import {
  addTally,
  emptyTally,
  nowIso,
  type RunProgress,
  type RunReport,
  type RunResult,
  runOutcome,
  type StoredReport,
  tallyOutcome,
  tallyVm,
  type VmReport,
  type VmTally,
  vmBytes,
} from '../core/run-report';
import { keywordListIfItFits, SA } from '../core/search-attributes';
import { BackupJobInputSchema, type BackupJobStartInput, parseStartInput } from '../core/start-contract';
import { MAIN_QUEUE } from '../core/task-queues';
import { runProgress, runStartDetails, tallyProgress } from '../core/ui-text';
import type { SelectedVm } from '../core/vm-selection';
import { BATCH_SIZE, backupBatch, batchSummary, batchWorkflowId, runVm, runWindowed } from './backup-batch';
import { takeJobSlot } from './job-guard';
import { mainActivities, reportActivities } from './options';
import { errorInfo, StepRecorder } from './report';

/** The patch that brought batches and the stored report (runs started before it replay the old code). */
const BATCHES_PATCH = 'vm-batches';
/** VMs per page of the selection (one `selectVms` result: ~100 bytes a VM). */
export const SELECTION_PAGE = 1_000;

export const runProgressQuery = defineQuery<RunProgress>('progress');

export async function backupJob(start: BackupJobStartInput): Promise<RunResult | RunReport> {
  // The start contract first: a bad input fails here, naming the field, before anything runs.
  const input = parseStartInput(BACKUP_JOB_WORKFLOW, BackupJobInputSchema, start);
  if (!patched(BATCHES_PATCH)) return legacyBackupJob(input);
  const { job } = input;
  const { workflowId } = workflowInfo();
  // The header, and the VMs the run knows itself (named by the job but in no pool).
  const report: RunReport = {
    workflowId,
    jobId: job.id,
    scheduleId: input.scheduleId,
    mode: job.mode,
    status: 'running',
    start: nowIso(),
    vms: [],
  };
  const tally = emptyTally();
  const progress = {
    selected: 0,
    selecting: true,
    batches: new Set<string>(),
    stored: undefined as StoredReport | undefined,
  };
  setHandler(runProgressQuery, () => ({
    ...headerOf(report),
    ...tally,
    selected: progress.selected,
    selecting: progress.selecting,
    batches: [...progress.batches],
    stored: progress.stored,
  }));
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
    const result: RunResult = { ...resultOf(report, tally), vms: [] }; // complete: no VM ran
    // A refused start is a failed run (Failed in Temporal, the summary in the details); a skip completes.
    if (report.status === 'failure') throw failedWith(FAILURE_TYPES.run, report.reason!, result);
    return result;
  }
  const reportRemoteId = job.remotes[0];
  let cancelled: unknown;
  let result: RunResult;
  try {
    let excluded = 0;
    let batch = 0;
    let after: string | undefined;
    do {
      const page = await mainActivities().selectVms({ vms: job.vms, after, limit: SELECTION_PAGE });
      if (after === undefined) {
        for (const uuid of page.missing) tallyVm(tally, missingVm(uuid, report));
        progress.selected += page.missing.length;
        if (!page.next) showSelection(page.selected);
      }
      excluded = page.excludedCount;
      progress.selected += page.selected.length;
      progress.selecting = page.next !== undefined;
      for (let i = 0; i < page.selected.length; i += BATCH_SIZE) {
        const vms = page.selected.slice(i, i + BATCH_SIZE);
        const id = batchWorkflowId(workflowId, batch);
        progress.batches.add(id);
        try {
          const done = await executeChild(backupBatch, {
            workflowId: id,
            taskQueue: MAIN_QUEUE,
            args: [{ input, runWorkflowId: workflowId, batch, vms, reportRemoteId }],
            // Cancelling the run cancels the batch, which waits for its VMs' cleanup.
            cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
            parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
            staticSummary: batchSummary(workflowId, batch, vms),
          });
          addTally(tally, done);
        } finally {
          progress.batches.delete(id);
          batch++;
          setCurrentDetails(tallyProgress(tally, progress.selected, 0));
        }
      }
      after = page.next;
    } while (after !== undefined);
    if (progress.selected === 0) {
      report.reason = `no VM matches the job's selection${excluded ? ` (${excluded} excluded)` : ''}`;
    }
    report.status = tallyOutcome(tally.counts);
  } catch (err) {
    report.status = 'failure';
    report.reason = errorInfo(err).message;
    if (isCancellation(err)) cancelled = err;
  } finally {
    report.end = nowIso();
    result = await CancellationScope.nonCancellable(() => storeReport(report, tally, reportRemoteId));
    progress.stored = result.stored;
    await CancellationScope.nonCancellable(() => slot.release());
  }
  if (cancelled) {
    upsertSearchAttributes([{ key: SA.outcome, value: 'cancelled' }]);
    throw cancelled;
  }
  upsertSearchAttributes([{ key: SA.outcome, value: result.status }]);
  if (job.reports && reportWanted(job.reports.when, result.status))
    result.reports = await sendReports(job.reports, result);
  // Failed in Temporal when any VM failed (or the selection did), the summary in the details.
  if (result.status === 'failure') throw failedWith(FAILURE_TYPES.run, runFailureMessage(result), result);
  return result;
}

function headerOf(report: RunReport): Omit<RunReport, 'vms' | 'reports'> {
  const { vms: _vms, reports: _reports, ...header } = report;
  return header;
}

/** A VM the job names by uuid that no configured pool has: a failed VM of the run. */
function missingVm(uuid: string, report: RunReport): VmReport {
  const vm: VmReport = {
    vmUuid: uuid,
    vmName: '?',
    poolId: '?',
    workflowId: '',
    status: 'failure',
    start: nowIso(),
    end: nowIso(),
    error: { code: 'VM_NOT_FOUND', message: `VM ${uuid} named by the job is in no configured pool` },
    steps: [],
  };
  report.vms.push(vm);
  return vm;
}

/** The pools and VMs of the run as search attributes, when the whole selection fits them. */
function showSelection(selected: readonly SelectedVm[]): void {
  const poolIds = keywordListIfItFits([...new Set(selected.map((v) => v.poolId))]);
  const vmUuids = keywordListIfItFits(selected.map((v) => v.uuid));
  upsertSearchAttributes([
    ...(poolIds ? [{ key: SA.poolIds, value: poolIds }] : []),
    ...(vmUuids ? [{ key: SA.vmUuids, value: vmUuids }] : []),
  ]);
}

/**
 * The full report goes to the job's first remote (or the worker's state folder); the run keeps
 * its tally, where it went, and its VMs when they are few. If storing fails, the run still ends
 * with its own tally and says why the full report is missing.
 */
async function storeReport(
  report: RunReport,
  own: VmTally,
  remoteId: string | undefined,
): Promise<RunResult> {
  try {
    const stored = await mainActivities(`store the report of ${report.workflowId}`).storeRunReport({
      remoteId,
      report,
    });
    const { stored: where, vms, ...tally } = stored;
    return { ...headerOf(report), ...tally, stored: where, vms };
  } catch (err) {
    return { ...resultOf(report, own), storeError: errorInfo(err).message };
  }
}

function resultOf(report: RunReport, tally: VmTally): RunResult {
  return { ...headerOf(report), ...tally };
}

function runFailureMessage(
  r: Pick<RunResult, 'jobId' | 'reason' | 'counts' | 'failed' | 'failedMore'>,
): string {
  if (r.counts.failure === 0) return `run of job ${r.jobId} failed: ${r.reason ?? 'unknown reason'}`;
  const names = r.failed.slice(0, 5).map((v) => v.vmName);
  const more = r.counts.failure - names.length;
  return `run of job ${r.jobId}: ${r.counts.failure} of ${r.counts.vms} VMs failed (${names.join(', ')}${more > 0 ? ` and ${more} more` : ''})`;
}

/**
 * Another run of the job is in flight: a scheduled run is skipped (as the schedule's overlap policy
 * would), any other start is refused; both name the run that holds the job.
 */
function refused(report: RunReport, heldBy: string): void {
  const scheduled = workflowInfo().searchAttributes?.TemporalScheduledById !== undefined;
  report.status = scheduled ? 'skipped' : 'failure';
  report.reason = `${scheduled ? 'skipped' : 'refused'}: job "${report.jobId}" already has a run in flight: ${heldBy}`;
  report.end = nowIso();
  upsertSearchAttributes([{ key: SA.outcome, value: report.status }]);
}

/**
 * Email and webhook, at once, each retried by Temporal for a few minutes; the activities read the
 * full report where it is stored. Their outcome is returned (`reports`); whatever happens the
 * run's outcome stays what its VMs made it.
 */
async function sendReports(reports: ReportsConfig, result: RunResult): Promise<RunResult['reports']> {
  const outcome: NonNullable<RunResult['reports']> = [];
  const steps = new StepRecorder(outcome);
  const send = reportActivities(`report of ${result.jobId} (${result.status})`);
  const sent = { ...result, reports: undefined };
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
  return outcome;
}

// ---------------------------------------------------------------------------------------------
// Before the `vm-batches` patch: every VM a child of the run, the whole report in the result and
// the `report` query. Kept so that runs started by an older worker still replay; remove with
// deprecatePatch(BATCHES_PATCH) once none can be in flight (docs: README "Upgrading workers").

export const runReportQuery = defineQuery<RunReport>('report');

async function legacyBackupJob(input: BackupJobInput): Promise<RunReport> {
  const { job } = input;
  const { workflowId } = workflowInfo();
  const report: RunReport = {
    workflowId,
    jobId: job.id,
    scheduleId: input.scheduleId,
    mode: job.mode,
    status: 'running',
    start: nowIso(),
    vms: [],
  };
  setHandler(runReportQuery, () => report);
  upsertSearchAttributes([
    { key: SA.jobId, value: job.id },
    { key: SA.mode, value: job.mode },
    ...(input.scheduleId ? [{ key: SA.scheduleId, value: input.scheduleId }] : []),
  ]);

  const slot = await takeJobSlot(job.id);
  if ('heldBy' in slot) {
    refused(report, slot.heldBy);
    if (report.status === 'failure') throw failedWith(FAILURE_TYPES.run, report.reason!, report);
    return report;
  }
  try {
    const selection = await mainActivities().selectVms({ vms: job.vms });
    for (const uuid of selection.missing) missingVm(uuid, report);
    showSelection(selection.selected);
    const excluded = selection.excluded?.length ?? selection.excludedCount;
    if (selection.selected.length === 0 && report.vms.length === 0) {
      report.reason = `no VM matches the job's selection${excluded ? ` (${excluded} excluded)` : ''}`;
    }
    await runWindowed(selection.selected, job.concurrency, async (vm) => {
      try {
        await runVm(input, vm, workflowId, (entry) => {
          report.vms.push(entry);
          showProgress(report);
        });
      } finally {
        showProgress(report);
      }
    });
    report.status = runOutcome(report.vms);
  } catch (err) {
    report.status = 'failure';
    report.reason = errorInfo(err).message;
    if (isCancellation(err)) {
      upsertSearchAttributes([{ key: SA.outcome, value: 'cancelled' }]);
      throw err;
    }
  } finally {
    report.end = nowIso();
    await CancellationScope.nonCancellable(() => slot.release());
  }
  upsertSearchAttributes([{ key: SA.outcome, value: report.status }]);
  if (job.reports && reportWanted(job.reports.when, report.status)) {
    const { reports: _, ...result } = resultOfFull(report);
    report.reports = await sendReports(job.reports, result);
  }
  if (report.status === 'failure')
    throw failedWith(FAILURE_TYPES.run, runFailureMessage(resultOfFull(report)), report);
  return report;
}

function resultOfFull(report: RunReport): RunResult {
  return { ...headerOf(report), ...report.vms.reduce(tallyVm, emptyTally()), vms: report.vms };
}

/** The run's current details in the Web UI: VMs done / failed / running, bytes exported. */
function showProgress(report: RunReport): void {
  const bytes = report.vms.reduce((n, vm) => n + vmBytes(vm), 0);
  setCurrentDetails(runProgress(report.vms, bytes));
}
