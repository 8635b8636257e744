// The typed client for programs that start, follow, list and cancel backup runs (DESIGN §1, §5).
// The CLI (`xcpb run`, `runs`, `cancel`) is built on these functions, so both behave alike.
import {
  type Client,
  ScheduleNotFoundError,
  type WorkflowExecutionDescription,
  type WorkflowExecutionStatusName,
  WorkflowFailedError,
  type WorkflowHandle,
  WorkflowNotFoundError,
} from '@temporalio/client';
import type { Config, JobConfig } from '../core/config/schema';
import {
  BACKUP_JOB_WORKFLOW,
  findJob,
  jobInput,
  manualRunWorkflowId,
  scheduleWorkflowId,
} from '../core/job-input';
import {
  addTally,
  type RunProgress,
  type RunReport,
  type RunResult,
  type VmReport,
} from '../core/run-report';
import { SA } from '../core/search-attributes';
import { MAIN_QUEUE } from '../core/task-queues';
import { runDetails, runSummary } from '../core/ui-text';
import type { BatchProgress } from '../workflows/backup-batch';
import type { backupJob } from '../workflows/backup-job';
import { runResultOf } from './run-result';
import { fullRunReport, type ReportConfig, readStoredReport } from './stored-report';

/** The query of a run's (and a batch's) bounded progress; runs from before batches answer 'report'. */
const PROGRESS_QUERY = 'progress';
const REPORT_QUERY = 'report';
/** A query needs a worker; without one it would wait for the RPC's own (long) deadline. */
const QUERY_DEADLINE_MS = 10_000;

export class RunInFlightError extends Error {
  constructor(
    readonly jobId: string,
    readonly runningWorkflowId: string,
  ) {
    super(
      `job "${jobId}" already has a run in flight: ${runningWorkflowId} ` +
        `(wait for it to end, or cancel it with \`xcpb cancel ${runningWorkflowId}\`)`,
    );
    this.name = 'RunInFlightError';
  }
}

export interface StartBackupJobOptions {
  config: Config;
  jobId: string;
  /** whose retention applies; default: the job's first schedule */
  scheduleId?: string;
  /** clock of the workflow id (tests) */
  now?: Date;
}

export type BackupJobHandle = WorkflowHandle<typeof backupJob>;

/**
 * Starts a run of a job now, as its schedule would (same input, same search attributes), under
 * the id `xcpb:<jobId>:manual-<ISO time>`. Refuses with RunInFlightError while another run of the
 * same job is still going, since two runs must not write the same VMs' chains at once.
 */
export async function startBackupJob(client: Client, o: StartBackupJobOptions): Promise<BackupJobHandle> {
  const job = findJob(o.config, o.jobId);
  const schedule = o.scheduleId ? job.schedules.find((s) => s.id === o.scheduleId) : job.schedules[0];
  if (o.scheduleId && !schedule) {
    const known = job.schedules.map((s) => s.id).join(', ') || 'none';
    throw new Error(`job "${job.id}" has no schedule "${o.scheduleId}" (its schedules: ${known})`);
  }
  const running = await findRunningRun(client, job);
  if (running) throw new RunInFlightError(job.id, running);
  const input = jobInput(job, schedule);
  return client.workflow.start<typeof backupJob>(BACKUP_JOB_WORKFLOW, {
    taskQueue: MAIN_QUEUE,
    workflowId: manualRunWorkflowId(job.id, o.now ?? new Date()),
    args: [input],
    staticSummary: runSummary(job),
    staticDetails: runDetails(input),
    typedSearchAttributes: [
      { key: SA.jobId, value: job.id },
      { key: SA.mode, value: job.mode },
      ...(schedule ? [{ key: SA.scheduleId, value: schedule.id }] : []),
    ],
  });
}

/**
 * The workflow id of a run of this job still in flight, if any. Visibility lags behind starts, so
 * the schedules' own lists of running actions are read too; both only propose candidates, and each
 * is confirmed with describe(), which is strongly consistent (a run listed as running may have
 * ended meanwhile).
 */
export async function findRunningRun(
  client: Client,
  job: Pick<JobConfig, 'id' | 'schedules'>,
): Promise<string | undefined> {
  const candidates = new Set<string>();
  const query = `WorkflowType = '${BACKUP_JOB_WORKFLOW}' AND XcpbJobId = ${quote(job.id)} AND ExecutionStatus = "Running"`;
  for await (const w of client.workflow.list({ query, pageSize: 20 })) candidates.add(w.workflowId);
  for (const s of job.schedules) {
    try {
      const d = await client.schedule.getHandle(scheduleWorkflowId(job.id, s.id)).describe();
      for (const a of d.info.runningActions) candidates.add(a.workflow.workflowId);
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err; // not applied yet: nothing runs from it
    }
  }
  for (const id of candidates) {
    const status = await statusOf(client, id);
    if (status === 'RUNNING') return id;
  }
  return undefined;
}

async function statusOf(
  client: Client,
  workflowId: string,
): Promise<WorkflowExecutionStatusName | undefined> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

export interface RunState {
  workflowId: string;
  /** Temporal's status of the run: RUNNING, COMPLETED, CANCELLED, TERMINATED, … */
  temporalStatus: WorkflowExecutionStatusName;
  closed: boolean;
  /**
   * The complete report once the run ended; while it runs, its header and the VMs of the batches
   * running now (running ones with their steps, and the last few finished).
   */
  report: RunReport;
  /** While it runs (and for a run that ended without a result): its bounded tally and selection. */
  progress?: RunProgress;
}

export interface ReadRunOptions {
  /** fill the bytes of running exports from their heartbeats (one more call per running VM) */
  liveBytes?: boolean;
  /** the config whose remotes hold the full reports of big runs (client/stored-report.ts) */
  config?: ReportConfig;
}

/** The report of a run: complete once it ended, its progress while it runs. */
export async function getRunReport(
  client: Client,
  workflowId: string,
  o: ReadRunOptions = {},
): Promise<RunReport> {
  return (await getRunState(client, workflowId, o)).report;
}

/**
 * A run's report and Temporal status. While the run goes, it answers a compact `progress` query
 * (bounded whatever the job's size); each running batch answers with its running VMs, and each
 * running VM's steps come from its child workflow (`<runId>/vm:<uuid>`).
 */
export async function getRunState(
  client: Client,
  workflowId: string,
  o: ReadRunOptions = {},
): Promise<RunState> {
  const handle = client.workflow.getHandle(workflowId);
  let description: WorkflowExecutionDescription;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new Error(`no run with id ${workflowId}`);
    throw err;
  }
  const temporalStatus = description.status.name;
  const closed = temporalStatus !== 'RUNNING';
  if (temporalStatus === 'COMPLETED' || temporalStatus === 'FAILED') {
    let result: RunResult | RunReport;
    try {
      result = await runResultOf(handle);
    } catch (err) {
      // Failed without a report: it never got to run (e.g. its input broke the start contract).
      if (!(err instanceof WorkflowFailedError)) throw err;
      const report = reportFromDescription(description);
      report.reason = innermostMessage(err);
      return { workflowId, temporalStatus, closed, report };
    }
    return { workflowId, temporalStatus, closed, report: await fullRunReport(result, o.config) };
  }
  const progress = await withQueryDeadline(client, () => handle.query<RunProgress>(PROGRESS_QUERY)).catch(
    () => undefined,
  );
  let report: RunReport;
  if (progress) {
    // A cancelled run stored its report before it ended.
    if (closed && progress.stored) {
      const stored = await readStoredReport(workflowId, progress.stored, o.config).catch(() => undefined);
      if (stored) return { workflowId, temporalStatus, closed, report: endedAs(stored, temporalStatus) };
    }
    report = { ...progress, vms: [] };
    const batches = await Promise.all(
      progress.batches.map((id) =>
        withQueryDeadline(client, () =>
          client.workflow.getHandle(id).query<BatchProgress>(PROGRESS_QUERY),
        ).catch(() => undefined),
      ),
    );
    for (const batch of batches) {
      if (!batch) continue;
      addTally(progress, batch);
      report.vms.push(...batch.vms);
    }
  } else {
    // A run started before batches answers only the whole-report query.
    try {
      report = await withQueryDeadline(client, () => handle.query<RunReport>(REPORT_QUERY));
    } catch {
      report = reportFromDescription(description);
    }
  }
  if (closed) report = endedAs(report, temporalStatus, description.closeTime);
  report.vms = await Promise.all(
    report.vms.map((vm) => (vm.workflowId ? vmWithChildReport(client, vm, closed, o) : vm)),
  );
  return { workflowId, temporalStatus, closed, report, progress };
}

/** Cancelled, terminated or timed out: the report as the run left it, marked as ended. */
function endedAs(report: RunReport, status: WorkflowExecutionStatusName, closeTime?: Date): RunReport {
  const ended = { ...report };
  if (ended.status === 'running') ended.status = 'failure';
  ended.reason ??= `run ${status.toLowerCase()}`;
  ended.end ??= closeTime?.toISOString();
  return ended;
}

async function vmWithChildReport(
  client: Client,
  vm: VmReport,
  runClosed: boolean,
  o: ReadRunOptions,
): Promise<VmReport> {
  // A finished VM in a run still going already carries its child's result.
  if (vm.status !== 'running' && !runClosed) return vm;
  const child = client.workflow.getHandle(vm.workflowId);
  let childReport: VmReport;
  try {
    childReport = await withQueryDeadline(client, () => child.query<VmReport>(REPORT_QUERY));
  } catch {
    return vm;
  }
  const merged: VmReport = { ...childReport, error: childReport.error ?? vm.error };
  if (runClosed && merged.status === 'running')
    merged.status = vm.status === 'running' ? 'failure' : vm.status;
  if (o.liveBytes && merged.status === 'running') await fillLiveBytes(client, child.workflowId, merged);
  return merged;
}

const EXPORT_ACTIVITIES = new Set(['exportDisk', 'exportVm']);

/**
 * Running export steps get the bytes their activity heartbeated, matched in scheduling order; an
 * activity being retried (an unreachable pool, a refused call) shows as the VM's detail as it
 * happens: `retrying takeSnapshot (attempt 3): connect ECONNREFUSED …`.
 */
async function fillLiveBytes(client: Client, childId: string, vm: VmReport): Promise<void> {
  const { steps } = vm;
  let description: WorkflowExecutionDescription;
  try {
    description = await client.workflow.getHandle(childId).describe();
  } catch {
    return;
  }
  const converter = client.options.loadedDataConverter.payloadConverter;
  const retrying = (description.raw.pendingActivities ?? []).find((a) => (a.attempt ?? 1) > 1);
  if (retrying) {
    const why = retrying.lastFailure?.message ? `: ${retrying.lastFailure.message}` : '';
    vm.detail = `retrying ${retrying.activityType?.name ?? 'a step'} (attempt ${retrying.attempt})${why}`;
  }
  const pending = (description.raw.pendingActivities ?? [])
    .filter((a) => EXPORT_ACTIVITIES.has(a.activityType?.name ?? ''))
    .sort((a, b) => Number(a.activityId) - Number(b.activityId));
  const running = steps.filter((s) => s.name === 'export' && s.status === 'running');
  pending.forEach((activity, i) => {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload || !running[i]) return;
    const details = converter.fromPayload<{ bytes?: number; total?: number }>(payload);
    if (typeof details?.bytes === 'number') running[i].bytes = details.bytes;
    if (typeof details?.total === 'number') running[i].total = details.total;
  });
}

function withQueryDeadline<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  return client.withDeadline(Date.now() + QUERY_DEADLINE_MS, fn);
}

/** The innermost message of a failure chain (the activity's or the validation's own words). */
export function innermostMessage(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.message) parts.push(e.message);
  }
  return parts.at(-1) ?? String(err);
}

/** What visibility alone says about a run no worker could answer for. */
function reportFromDescription(d: WorkflowExecutionDescription): RunReport {
  const sa = d.typedSearchAttributes;
  return {
    workflowId: d.workflowId,
    jobId: sa.get(SA.jobId) ?? '?',
    scheduleId: sa.get(SA.scheduleId),
    mode: sa.get(SA.mode) ?? '?',
    status: d.status.name === 'RUNNING' ? 'running' : 'failure',
    start: d.startTime.toISOString(),
    end: d.closeTime?.toISOString(),
    reason: 'no worker answered for this run, so only its Temporal status is known',
    vms: [],
  };
}

export interface RunSummary {
  workflowId: string;
  runId: string;
  jobId?: string;
  scheduleId?: string;
  mode?: string;
  temporalStatus: WorkflowExecutionStatusName;
  start: Date;
  end?: Date;
  /** XcpbOutcome: success | failure | skipped | cancelled, once the run ended */
  outcome?: string;
}

export interface ListRunsOptions {
  jobId?: string;
  /** default 20 */
  limit?: number;
}

/** Recent runs, newest first, from Temporal visibility (eventually consistent: a run started a
 * moment ago may be missing). Only job runs, not their per-VM children. */
export async function listRuns(client: Client, o: ListRunsOptions = {}): Promise<RunSummary[]> {
  const limit = o.limit ?? 20;
  let query = `WorkflowType = '${BACKUP_JOB_WORKFLOW}'`;
  if (o.jobId) query += ` AND XcpbJobId = ${quote(o.jobId)}`;
  const runs: RunSummary[] = [];
  if (limit <= 0) return runs;
  for await (const w of client.workflow.list({ query, pageSize: Math.min(limit, 100) })) {
    const sa = w.typedSearchAttributes;
    runs.push({
      workflowId: w.workflowId,
      runId: w.runId,
      jobId: sa.get(SA.jobId),
      scheduleId: sa.get(SA.scheduleId),
      mode: sa.get(SA.mode),
      temporalStatus: w.status.name,
      start: w.startTime,
      end: w.closeTime,
      outcome: sa.get(SA.outcome),
    });
    if (runs.length >= limit) break;
  }
  return runs;
}

/**
 * Asks a run to stop. The run cancels its VMs, each of which still deletes its snapshot and
 * releases its locks before the run ends as cancelled; this returns once the request is recorded.
 */
export async function cancelRun(client: Client, workflowId: string): Promise<void> {
  const status = await statusOf(client, workflowId);
  if (!status) throw new Error(`no run with id ${workflowId}`);
  if (status !== 'RUNNING') throw new Error(`run ${workflowId} already ended (${status.toLowerCase()})`);
  await client.workflow.getHandle(workflowId).cancel();
}

/** A string literal of Temporal's list query language. */
function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
