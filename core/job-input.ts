// What a run of a job receives: the job definition and the schedule's settings, by ids only. Pools
// and remotes are referenced by id; credentials stay in the worker's config, never in history.
// Its shape and defaults are the start contract (core/start-contract.ts).
import type { Config, JobConfig, ScheduleConfig } from './config/schema';
import type { BackupJobInput } from './start-contract';

export type { BackupJobInput, BackupJobStartInput } from './start-contract';

export const MAIN_TASK_QUEUE = 'xcpb';
export const BACKUP_JOB_WORKFLOW = 'backupJob';

export function scheduleWorkflowId(jobId: string, scheduleId: string): string {
  return `xcpb:${jobId}:${scheduleId}`;
}

export function manualRunWorkflowId(jobId: string, now: Date): string {
  return `xcpb:${jobId}:manual-${now.toISOString()}`;
}

export function jobInput(job: JobConfig, schedule?: ScheduleConfig): BackupJobInput {
  const { schedules: _schedules, ...definition } = job;
  return {
    job: definition,
    scheduleId: schedule?.id,
    retention: schedule?.retention ?? { remote: 0, snapshot: 0 },
    copyRetention: schedule?.copyRetention ?? 0,
    timezone: schedule?.timezone ?? 'UTC',
    healthCheck: schedule?.healthCheck,
  };
}

export function findJob(config: Config, jobId: string): JobConfig {
  const job = config.jobs.find((j) => j.id === jobId);
  if (!job) {
    const known = config.jobs.map((j) => j.id).join(', ') || 'none';
    throw new Error(`unknown job "${jobId}" (jobs in the config: ${known})`);
  }
  return job;
}

/**
 * The id of a job's run guard: a workflow that exists while a run of the job is in flight (one
 * workflow id can be running only once: Temporal decides which run holds the job).
 */
export function jobGuardWorkflowId(jobId: string): string {
  return `xcpb:${jobId}:run-guard`;
}
