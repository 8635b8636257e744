// The one reader of a finished workflow's report. Our workflows end Completed with their report as
// the result, or Failed with it in the failure's details (core/outcome-failure.ts); either way the
// report is what callers want. Everything that waits for a run (CLI, typed client, tests) goes
// through here instead of `handle.result()`, which throws for a failed run.
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { type FailureType, reportOfFailure } from '../core/outcome-failure';
import type { RunReport, RunResult, VmReport } from '../core/run-report';
import type { RestoreFailureReport, RestoreVmResult } from '../workflows/restore-vm';
import { fullRunReport, type ReportConfig } from './stored-report';

/**
 * Waits for the workflow and returns its report: the result when it completed, the failure's
 * details when it failed with one of our report failures. Any other end (cancelled, terminated,
 * timed out, failed without a report) is rethrown as Temporal's WorkflowFailedError.
 */
export async function reportOf<T>(handle: Pick<WorkflowHandle, 'result'>, type?: FailureType): Promise<T> {
  try {
    return (await handle.result()) as T;
  } catch (err) {
    const report = err instanceof WorkflowFailedError ? reportOfFailure<T>(err, type) : undefined;
    if (report === undefined) throw err;
    return report;
  }
}

/**
 * The bounded result of a finished `backupJob`, whether it succeeded or failed: counts, bytes, the
 * first failed VMs, where the full report is stored, and every VM's report when they are few.
 * (A run started before batches returns its full report here.)
 */
export const runResultOf = (handle: Pick<WorkflowHandle, 'result'>) =>
  reportOf<RunResult | RunReport>(handle, 'XcpbRunFailed');

/**
 * The complete run report of a finished `backupJob`, whether it succeeded or failed: carried by
 * the result for a small run, else read where the run stored it (its first remote, opened with
 * `config`; see client/stored-report.ts).
 */
export async function runReportOf(
  handle: Pick<WorkflowHandle, 'result'>,
  o: { config?: ReportConfig } = {},
): Promise<RunReport> {
  return fullRunReport(await runResultOf(handle), o.config);
}

/** The VM report of a finished `backupVm` (a run's child), whether it succeeded or failed. */
export const vmReportOf = (handle: Pick<WorkflowHandle, 'result'>) =>
  reportOf<VmReport>(handle, 'XcpbVmBackupFailed');

export type RestoreOutcome =
  | { ok: true; result: RestoreVmResult }
  | { ok: false; failure: RestoreFailureReport; message: string };

/** The end of a `restoreVm`: the restored VM, or how far it went and why it stopped. */
export async function restoreOutcomeOf(handle: Pick<WorkflowHandle, 'result'>): Promise<RestoreOutcome> {
  try {
    return { ok: true, result: (await handle.result()) as RestoreVmResult };
  } catch (err) {
    const failure =
      err instanceof WorkflowFailedError
        ? reportOfFailure<RestoreFailureReport>(err, 'XcpbRestoreFailed')
        : undefined;
    if (!failure) throw err;
    return { ok: false, failure, message: failure.error.message };
  }
}
