// Which Temporal schedules the config wants, and what must change to get there. Pure: the caller
// reads the existing schedules and applies the plan.
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Config } from '../core/config/schema';
import { parseDuration } from '../core/duration';
import {
  BACKUP_JOB_WORKFLOW,
  type BackupJobInput,
  jobInput,
  MAIN_TASK_QUEUE,
  scheduleWorkflowId,
} from '../core/job-input';
import { stableStringify } from '../core/stable-json';

export const SCHEDULE_PREFIX = 'xcpb:';

export interface DesiredSchedule {
  /** the config this schedule belongs to (recorded in its memo) */
  configName: string;
  scheduleId: string;
  jobId: string;
  configScheduleId: string;
  mode: string;
  cron: string;
  timezone: string;
  paused: boolean;
  catchupWindowMs: number;
  workflowType: string;
  taskQueue: string;
  workflowId: string;
  input: BackupJobInput;
  /** Hash of everything above but `paused`: equal hashes mean nothing to update. */
  hash: string;
}

export interface ExistingSchedule {
  scheduleId: string;
  hash?: string;
  paused: boolean;
  /** the name of the config that made it (none: made before names were recorded) */
  configName?: string;
}

export interface SchedulePlan {
  create: DesiredSchedule[];
  update: { desired: DesiredSchedule; reasons: string[] }[];
  remove: ExistingSchedule[];
  unchanged: DesiredSchedule[];
  /** schedules of other configs, left alone (deleted only with prune) */
  others: ExistingSchedule[];
}

/** The name a config's schedules are recorded under: its `name`, else its file name without extension. */
export function configNameFor(config: Pick<Config, 'name'>, file?: string): string {
  if (config.name) return config.name;
  return file ? path.basename(file).replace(/\.(ya?ml|json)$/i, '') : 'default';
}

export function desiredSchedules(config: Config, configName = configNameFor(config)): DesiredSchedule[] {
  return config.jobs.flatMap((job) =>
    job.schedules.map((s) => {
      const base = {
        configName,
        scheduleId: scheduleWorkflowId(job.id, s.id),
        jobId: job.id,
        configScheduleId: s.id,
        mode: job.mode,
        cron: s.cron,
        timezone: s.timezone,
        catchupWindowMs: parseDuration(job.catchupWindow) ?? 3_600_000,
        workflowType: BACKUP_JOB_WORKFLOW,
        taskQueue: MAIN_TASK_QUEUE,
        workflowId: scheduleWorkflowId(job.id, s.id),
        input: jobInput(job, s),
      };
      const hash = createHash('sha256').update(stableStringify(base)).digest('hex').slice(0, 32);
      return { ...base, paused: !s.enabled, hash };
    }),
  );
}

/**
 * What to change so that the config's schedules exist as written. Our schedules that the config no
 * longer has are deleted when they belong to this config (`configName`); those of other configs
 * (or of none recorded) only with `prune`.
 */
export function planSchedules(
  desired: readonly DesiredSchedule[],
  existing: readonly ExistingSchedule[],
  o: { configName?: string; prune?: boolean } = {},
): SchedulePlan {
  const configName = o.configName ?? desired[0]?.configName ?? 'default';
  const byId = new Map(existing.map((e) => [e.scheduleId, e]));
  const wanted = new Set(desired.map((d) => d.scheduleId));
  const plan: SchedulePlan = { create: [], update: [], remove: [], unchanged: [], others: [] };
  for (const d of desired) {
    const e = byId.get(d.scheduleId);
    if (!e) {
      plan.create.push(d);
      continue;
    }
    const reasons: string[] = [];
    if (e.hash !== d.hash) reasons.push('definition changed');
    if (e.paused !== d.paused) reasons.push(d.paused ? 'pause' : 'unpause');
    if (reasons.length) plan.update.push({ desired: d, reasons });
    else plan.unchanged.push(d);
  }
  const notWanted = existing
    .filter((e) => e.scheduleId.startsWith(SCHEDULE_PREFIX) && !wanted.has(e.scheduleId))
    .sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
  plan.remove = notWanted.filter((e) => o.prune || e.configName === configName);
  plan.others = notWanted.filter((e) => !plan.remove.includes(e));
  return plan;
}

export function planIsEmpty(plan: SchedulePlan): boolean {
  return plan.create.length + plan.update.length + plan.remove.length === 0;
}

export function describePlan(plan: SchedulePlan): string[] {
  return [
    ...plan.create.map(
      (d) => `+ create ${d.scheduleId} (${d.cron} ${d.timezone}${d.paused ? ', paused' : ''})`,
    ),
    ...plan.update.map((u) => `~ update ${u.desired.scheduleId} (${u.reasons.join(', ')})`),
    ...plan.remove.map((e) => `- delete ${e.scheduleId}${e.configName ? ` (config ${e.configName})` : ''}`),
  ];
}
