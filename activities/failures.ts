// Turns errors into Temporal failures: XAPI codes kept as the failure type, and the ones retrying
// cannot fix marked non-retryable, so a VM fails at once with a clear reason.
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { XapiError } from '../xapi';

const PERMANENT_XAPI_CODES = new Set([
  'VM_IS_TEMPLATE',
  'HANDLE_INVALID',
  'UUID_INVALID',
  'OPERATION_BLOCKED',
  'VM_BAD_POWER_STATE',
  'MESSAGE_METHOD_UNKNOWN',
  'MESSAGE_PARAMETER_COUNT_MISMATCH',
  'SESSION_AUTHENTICATION_FAILED',
  'PERMISSION_DENIED',
  'SR_FULL',
  'VDI_MISSING',
  'SR_BACKEND_FAILURE_109', // chain too long: the workflow waits on a timer instead of retrying
]);

export function isPermanentXapiCode(code: string): boolean {
  return PERMANENT_XAPI_CODES.has(code);
}

/** Wraps `fn` so a XapiError reaches the workflow as an ApplicationFailure of type = XAPI code. */
export async function withXapiFailures<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asFailure(what, err);
  }
}

/** The activity's cancellation, when it was cancelled: whatever broke (an aborted stream, a
 * cancelled XAPI task) must then be reported as the cancellation, not as a failure. */
function cancellation(): unknown {
  try {
    const signal = Context.current().cancellationSignal;
    return signal.aborted ? (signal.reason ?? new CancelledFailure('cancelled')) : undefined;
  } catch {
    return undefined; // not inside an activity (e.g. `xcpb preview` calls the same code)
  }
}

export function asFailure(what: string, err: unknown): unknown {
  const cancelled = cancellation();
  if (cancelled) return cancelled;
  if (err instanceof XapiError) {
    return ApplicationFailure.create({
      message: `${what}: ${err.code}${err.params.length ? `(${err.params.join(', ')})` : ''}`,
      type: err.code,
      nonRetryable: isPermanentXapiCode(err.code),
      details: [{ code: err.code, params: err.params }],
    });
  }
  return err;
}

export function permanent(message: string, type = 'INVALID'): ApplicationFailure {
  return ApplicationFailure.create({ message, type, nonRetryable: true });
}
