// Hands each finished VM backup and restore to the worker's metrics (workers/metrics.ts) through a
// sink. Sinks are not called on replay, so a run is counted by the worker that finished it, once
// (a workflow task retried after a crash may count it again: metrics are not the record, the report
// is). Emits no command, so it changes no history and can be added or removed freely.
import {
  ApplicationFailure,
  proxySinks,
  type Sinks,
  type WorkflowInboundCallsInterceptor,
  type WorkflowInterceptorsFactory,
  workflowInfo,
} from '@temporalio/workflow';
import type { VmReport } from '../core/run-report';

export interface MetricsSinks extends Sinks {
  metrics: {
    vmBackupEnded(jobId: string, report: VmReport): void;
    restoreEnded(ok: boolean): void;
  };
}

const { metrics } = proxySinks<MetricsSinks>();

/** The report a workflow returned, or carried in the details of the failure it ended with. */
function reportOf(outcome: unknown): VmReport | undefined {
  const value = outcome instanceof ApplicationFailure ? outcome.details?.[0] : outcome;
  return value && typeof value === 'object' && 'vmUuid' in value && 'steps' in value
    ? (value as VmReport)
    : undefined;
}

const observe: WorkflowInboundCallsInterceptor = {
  async execute(input, next) {
    const type = workflowInfo().workflowType;
    const jobId = (input.args[0] as { job?: { id?: string } } | undefined)?.job?.id ?? '?';
    try {
      const result = await next(input);
      if (type === 'backupVm') {
        const report = reportOf(result);
        if (report) metrics.vmBackupEnded(jobId, report);
      } else if (type === 'restoreVm') metrics.restoreEnded(true);
      return result;
    } catch (err) {
      if (type === 'backupVm') {
        const report = reportOf(err);
        if (report) metrics.vmBackupEnded(jobId, report);
      } else if (type === 'restoreVm') metrics.restoreEnded(false);
      throw err;
    }
  },
};

export const interceptors: WorkflowInterceptorsFactory = () => ({ inbound: [observe] });
