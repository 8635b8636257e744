// "Status tells the truth" (DESIGN §4): a workflow whose work failed ends Failed, with a
// non-retryable ApplicationFailure of one of these types whose first detail is its report. So the
// Web UI and `temporal workflow list` show red, and nothing of the report is lost: readers take it
// from the result (Completed) or from the failure's details (Failed), see client/run-result.ts.
// Pure (used inside workflows and by the client).
import { ApplicationFailure } from '@temporalio/common';

export const FAILURE_TYPES = {
  /** backupJob: at least one VM failed, or the run could not select its VMs; details[0]: RunReport */
  run: 'XcpbRunFailed',
  /** backupVm: the VM's backup failed; details[0]: VmReport */
  vm: 'XcpbVmBackupFailed',
  /** restoreVm: details[0]: RestoreFailureReport */
  restore: 'XcpbRestoreFailed',
  /** healthCheck: details[0]: RestoreFailureReport */
  healthCheck: 'XcpbHealthCheckFailed',
  /** backupJob / restoreVm started with an input that does not match the start contract */
  input: 'XcpbInvalidInput',
} as const;

export type FailureType = (typeof FAILURE_TYPES)[keyof typeof FAILURE_TYPES];
const REPORT_TYPES: ReadonlySet<string> = new Set(Object.values(FAILURE_TYPES));

/** The failure a workflow throws to end Failed with its report. Never retried: the work is done. */
export function failedWith(
  type: FailureType,
  message: string,
  report: unknown,
  cause?: Error,
): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true, details: [report], cause });
}

/**
 * The report carried by one of our failures anywhere in `err`'s cause chain (a workflow failure
 * wraps it once; a child workflow failure seen by its parent wraps it once more), else undefined.
 */
export function reportOfFailure<T>(err: unknown, type?: FailureType): T | undefined {
  for (let e = err as { cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e instanceof ApplicationFailure && e.type && REPORT_TYPES.has(e.type)) {
      if (type && e.type !== type) return undefined;
      return e.details?.[0] as T | undefined;
    }
  }
  return undefined;
}

/** The type of the first of our failures in `err`'s cause chain. */
export function failureTypeOf(err: unknown): FailureType | undefined {
  for (let e = err as { cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e instanceof ApplicationFailure && e.type && REPORT_TYPES.has(e.type)) return e.type as FailureType;
  }
  return undefined;
}
