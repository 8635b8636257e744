// The run report (DESIGN §5): job → VM → steps. Built by the workflows, returned as their result
// (or carried in their failure's details, core/outcome-failure.ts), readable through the `report`
// query while they run, printed by `xcpb runs show`. Described by zod schemas so its JSON Schema
// (`xcpb schema run-report`, docs/schemas/) is generated from the same source as the types.
import { z } from 'zod';

const isoTime = z.string().describe('ISO 8601 time in UTC, e.g. 2026-01-15T02:00:03.120Z');

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
  start: isoTime,
  end: isoTime.optional(),
  bytes: z.number().optional(),
  /** bytes a running transfer will move in all, when known (a VHD export: from its header) */
  total: z.number().optional(),
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
  start: isoTime,
  end: isoTime.optional(),
  detail: z.string().optional(),
  error: ErrorInfoSchema.optional(),
  steps: z.array(StepReportSchema),
});
export type VmReport = z.infer<typeof VmReportSchema>;

/** What a run's full report and its bounded result both begin with. */
const runHeader = {
  workflowId: z.string(),
  jobId: z.string(),
  scheduleId: z.string().optional(),
  mode: z.string(),
  status: StatusSchema,
  start: isoTime,
  end: isoTime.optional(),
  reason: z.string().optional(),
};

export const RunReportSchema = z
  .object({
    ...runHeader,
    vms: z.array(VmReportSchema),
    reports: z
      .array(StepReportSchema)
      .optional()
      .describe('the report sent by email and webhook after the run (name: email | webhook)'),
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

/** Now, as report times are written (workflow code gets the workflow's deterministic clock). */
export function nowIso(): string {
  return new Date().toISOString();
}

/**
 * Milliseconds between two report times; `end` defaults to now (a running item). Accepts epoch
 * milliseconds too: reports written before times became ISO strings.
 */
export function durationMs(start: string | number, end?: string | number, now = Date.now()): number {
  const ms = (t: string | number) => (typeof t === 'number' ? t : Date.parse(t));
  return (end === undefined ? now : ms(end)) - ms(start);
}

export function throughput(step: StepReport): number | undefined {
  if (!step.bytes || !step.end) return undefined;
  const seconds = durationMs(step.start, step.end) / 1000;
  return seconds > 0 ? step.bytes / seconds : undefined;
}

/** Bytes a VM's exports moved so far. */
export function vmBytes(vm: Pick<VmReport, 'steps'>): number {
  return vm.steps.filter((s) => s.name === 'export').reduce((n, s) => n + (s.bytes ?? 0), 0);
}

// ---------------------------------------------------------------------------------------------
// Bounded forms (issue 14, scale). A run's full report grows with its VMs (a few KB each), so it
// is stored outside Temporal's history (remotes/run-reports.ts) and what Temporal carries — the
// workflow's result, its failure's details, its queries — is bounded whatever the job's size.

/** At most this many failed VMs are named in a summary; the rest are counted ("and N more"). */
export const FAILED_NAMED = 20;
/** A failed VM's error message in a summary is cut to this many characters (the report has it whole). */
export const SUMMARY_MESSAGE_CHARS = 1_000;
/** A run whose VM reports fit in this many bytes of JSON also carries them in its result. */
export const INLINE_VMS_BYTES = 128 * 1024;

export const VmCountsSchema = z.object({
  vms: z.number().describe('VMs of the run (selected and missing)'),
  success: z.number(),
  failure: z.number(),
  skipped: z.number(),
  running: z.number(),
});
export type VmCounts = z.infer<typeof VmCountsSchema>;

export const FailedVmSchema = z.object({
  vmUuid: z.string(),
  vmName: z.string(),
  workflowId: z.string(),
  error: ErrorInfoSchema.optional(),
});
export type FailedVm = z.infer<typeof FailedVmSchema>;

export const StoredReportSchema = z.object({
  remoteId: z
    .string()
    .optional()
    .describe("the remote holding it; absent: the worker's state folder (a job without remotes)"),
  path: z.string().describe('relative to the remote root (or to <state folder>/run-reports)'),
});
export type StoredReport = z.infer<typeof StoredReportSchema>;

export const RunResultSchema = z
  .object({
    ...runHeader,
    counts: VmCountsSchema,
    bytes: z.number().describe('bytes exported by all VMs'),
    failed: z.array(FailedVmSchema).describe(`the first ${FAILED_NAMED} failed VMs`),
    failedMore: z.number().describe('failed VMs not named in `failed` ("and N more")'),
    stored: StoredReportSchema.optional().describe('where the full report (RunReport) is'),
    storeError: z.string().optional().describe('why the full report could not be stored'),
    vms: z
      .array(VmReportSchema)
      .optional()
      .describe(`every VM's report, when they fit in ${INLINE_VMS_BYTES / 1024} KiB (small runs)`),
    reports: RunReportSchema.shape.reports,
  })
  .describe(
    'result of a Completed backupJob (details[0] of its XcpbRunFailed failure when it ended Failed): ' +
      'a bounded summary and where the full report is; read the full report with client/run-result.ts',
  );
export type RunResult = z.infer<typeof RunResultSchema>;

/** What a run's VMs add up to, bounded: counts, bytes, the first failed VMs. */
export interface VmTally {
  counts: VmCounts;
  bytes: number;
  failed: FailedVm[];
  failedMore: number;
}

export const emptyTally = (): VmTally => ({
  counts: { vms: 0, success: 0, failure: 0, skipped: 0, running: 0 },
  bytes: 0,
  failed: [],
  failedMore: 0,
});

/** Adds one VM (in its final or current state) to a tally. */
export function tallyVm(t: VmTally, vm: VmReport): VmTally {
  t.counts.vms++;
  t.counts[vm.status]++;
  t.bytes += vmBytes(vm);
  if (vm.status === 'failure') {
    if (t.failed.length < FAILED_NAMED)
      t.failed.push({
        vmUuid: vm.vmUuid,
        vmName: vm.vmName,
        workflowId: vm.workflowId,
        error: clipped(vm.error),
      });
    else t.failedMore++;
  }
  return t;
}

function clipped(error: ErrorInfo | undefined): ErrorInfo | undefined {
  if (!error || error.message.length <= SUMMARY_MESSAGE_CHARS) return error;
  return { ...error, message: `${error.message.slice(0, SUMMARY_MESSAGE_CHARS - 1)}…` };
}

/** Two tallies as one (a run's batches). */
export function addTally(a: VmTally, b: VmTally): VmTally {
  for (const k of Object.keys(a.counts) as (keyof VmCounts)[]) a.counts[k] += b.counts[k];
  a.bytes += b.bytes;
  for (const f of b.failed) {
    if (a.failed.length < FAILED_NAMED) a.failed.push(f);
    else a.failedMore++;
  }
  a.failedMore += b.failedMore;
  return a;
}

/** The run's outcome from its tally (as runOutcome does from the VMs). */
export function tallyOutcome(c: VmCounts): Status {
  if (c.vms === 0) return 'skipped';
  if (c.running > 0) return 'running';
  if (c.failure > 0) return 'failure';
  if (c.skipped === c.vms) return 'skipped';
  return 'success';
}

/** A full report's bounded result (`vms` kept only when they fit in INLINE_VMS_BYTES). */
export function resultOf(report: RunReport, stored?: StoredReport, storeError?: string): RunResult {
  const { vms, ...header } = report;
  const tally = vms.reduce(tallyVm, emptyTally());
  const inline = JSON.stringify(vms).length <= INLINE_VMS_BYTES;
  return { ...header, ...tally, stored, storeError, vms: inline ? vms : undefined };
}

/**
 * A run's `progress` query (what `xcpb run` polls): its header, the tally of its finished batches,
 * how many VMs it selected so far, and the batches running now (each answers its own `progress`
 * query with its running VMs). Bounded whatever the job's size.
 */
export type RunProgress = Omit<RunReport, 'vms' | 'reports'> &
  VmTally & {
    /** VMs of the run known so far: selected (read in pages as the run goes) and missing ones */
    selected: number;
    /** whether more pages of the selection are still to come */
    selecting: boolean;
    /** workflow ids of the batches running now */
    batches: string[];
    /** where the full report went, once the run stored it (a cancelled run too) */
    stored?: StoredReport;
  };

/**
 * The full report a result carries itself: its VMs inline (a small run), or a report of a run
 * from before batches (whose result was the full report). Undefined: read it where it is stored.
 */
export function inlineReportOf(r: RunResult | RunReport): RunReport | undefined {
  if (!r.vms) return undefined;
  const { workflowId, jobId, scheduleId, mode, status, start, end, reason, vms, reports } = r;
  return { workflowId, jobId, scheduleId, mode, status, start, end, reason, vms, reports };
}
