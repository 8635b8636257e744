// The run report (DESIGN §5): job → VM → steps. Built by the workflows, returned as their result
// (or carried in their failure's details, core/outcome-failure.ts), readable through the `report`
// query while they run, printed by `xcpb runs show`. Described by zod schemas so its JSON Schema
// (`xcpb schema run-report`, docs/schemas/) is generated from the same source as the types.
import { z } from 'zod';

const epochMs = z.number().describe('milliseconds since 1970-01-01T00:00:00Z');

export const StatusSchema = z.enum(['success', 'failure', 'skipped', 'running']);
export type Status = z.infer<typeof StatusSchema>;

export const ErrorInfoSchema = z.object({
  code: z.string().optional().describe('XAPI error code or our failure type'),
  message: z.string(),
});
export type ErrorInfo = z.infer<typeof ErrorInfoSchema>;

export const StepReportSchema = z.object({
  name: z.string().describe('preflight | snapshot | export | transfer | metadata | cleanup | retention | …'),
  target: z.string().optional().describe('remote id, disk, SR'),
  status: StatusSchema,
  start: epochMs,
  end: epochMs.optional(),
  bytes: z.number().optional(),
  detail: z.string().optional(),
  error: ErrorInfoSchema.optional(),
});
export type StepReport = z.infer<typeof StepReportSchema>;

export const VmReportSchema = z.object({
  vmUuid: z.string(),
  vmName: z.string(),
  poolId: z.string(),
  workflowId: z.string().describe("the VM's child workflow: <runId>/vm:<vmUuid>"),
  status: StatusSchema,
  start: epochMs,
  end: epochMs.optional(),
  detail: z.string().optional(),
  error: ErrorInfoSchema.optional(),
  steps: z.array(StepReportSchema),
});
export type VmReport = z.infer<typeof VmReportSchema>;

export const RunReportSchema = z
  .object({
    workflowId: z.string(),
    jobId: z.string(),
    scheduleId: z.string().optional(),
    mode: z.string(),
    status: StatusSchema,
    start: epochMs,
    end: epochMs.optional(),
    reason: z.string().optional(),
    vms: z.array(VmReportSchema),
  })
  .describe(
    'result of a Completed backupJob, or details[0] of its XcpbRunFailed failure when it ended Failed',
  );
export type RunReport = z.infer<typeof RunReportSchema>;

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
