// Recording steps into a report as they run, and turning failures into readable errors.
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  isCancellation,
} from '@temporalio/workflow';
import { reportOfFailure } from '../core/outcome-failure';
import { type ErrorInfo, nowIso, type StepReport } from '../core/run-report';

export function errorInfo(err: unknown): ErrorInfo {
  let cause = err;
  while ((cause instanceof ActivityFailure || cause instanceof ChildWorkflowFailure) && cause.cause)
    cause = cause.cause;
  if (isCancellation(err)) return { code: 'CANCELLED', message: 'cancelled' };
  if (cause instanceof ApplicationFailure) {
    // A failed restore or health check carries the error that stopped it, with its XAPI code.
    const inner = reportOfFailure<{ error?: ErrorInfo }>(cause);
    if (inner?.error?.message) return inner.error;
    return { code: cause.type ?? undefined, message: cause.message };
  }
  return { message: cause instanceof Error ? cause.message : String(cause) };
}

export class StepRecorder {
  constructor(readonly steps: StepReport[]) {}

  /** Runs `fn` as a step: recorded running, then success (with what `done` says) or failure. */
  async run<T>(
    name: string,
    fn: () => Promise<T>,
    opts: { target?: string; done?: (value: T) => Partial<StepReport> } = {},
  ): Promise<T> {
    const step: StepReport = { name, target: opts.target, status: 'running', start: nowIso() };
    this.steps.push(step);
    try {
      const value = await fn();
      Object.assign(step, { status: 'success', end: nowIso() }, opts.done?.(value));
      return value;
    } catch (err) {
      Object.assign(step, { status: 'failure', end: nowIso(), error: errorInfo(err) });
      throw err;
    }
  }

  record(step: Omit<StepReport, 'start'> & { start?: string }): void {
    this.steps.push({ start: nowIso(), end: nowIso(), ...step });
  }
}
