// The run report (DESIGN §5): job → VM → steps. Built by the workflows, returned as their result,
// readable through the `report` query while they run, printed by `xcpb runs show`.

export type Status = 'success' | 'failure' | 'skipped' | 'running';

export interface ErrorInfo {
  code?: string; // XAPI error code or our failure type
  message: string;
}

export interface StepReport {
  name: string; // preflight | snapshot | export | transfer | metadata | cleanup | retention | ...
  target?: string; // remote id, disk, SR
  status: Status;
  start: number;
  end?: number;
  bytes?: number;
  detail?: string;
  error?: ErrorInfo;
}

export interface VmReport {
  vmUuid: string;
  vmName: string;
  poolId: string;
  workflowId: string;
  status: Status;
  start: number;
  end?: number;
  detail?: string;
  error?: ErrorInfo;
  steps: StepReport[];
}

export interface RunReport {
  workflowId: string;
  jobId: string;
  scheduleId?: string;
  mode: string;
  status: Status;
  start: number;
  end?: number;
  reason?: string;
  vms: VmReport[];
}

/** A VM failed if any step failed; a run failed if any VM failed; skipped when nothing ran. */
export function vmOutcome(steps: readonly StepReport[]): Status {
  if (steps.some((s) => s.status === 'running')) return 'running';
  if (steps.some((s) => s.status === 'failure')) return 'failure';
  if (steps.length > 0 && steps.every((s) => s.status === 'skipped')) return 'skipped';
  return 'success';
}

export function runOutcome(vms: readonly Pick<VmReport, 'status'>[]): Status {
  if (vms.length === 0) return 'skipped';
  if (vms.some((v) => v.status === 'running')) return 'running';
  if (vms.some((v) => v.status === 'failure')) return 'failure';
  if (vms.every((v) => v.status === 'skipped')) return 'skipped';
  return 'success';
}

export function throughput(step: StepReport): number | undefined {
  if (!step.bytes || !step.end) return undefined;
  const seconds = (step.end - step.start) / 1000;
  return seconds > 0 ? step.bytes / seconds : undefined;
}
