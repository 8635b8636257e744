// xcp-backup as a library: start, follow, list and cancel backup runs from your own programs.
// See examples/start-backup.ts.

export { formatReportTree } from './cli/report-format';
export {
  type BackupJobHandle,
  cancelRun,
  findRunningRun,
  getRunReport,
  getRunState,
  type ListRunsOptions,
  listRuns,
  type ReadRunOptions,
  RunInFlightError,
  type RunState,
  type RunSummary,
  type StartBackupJobOptions,
  startBackupJob,
} from './client/backup-client';
export {
  connectClient,
  resolveTarget,
  TemporalConnectionError,
  type TemporalTarget,
  temporalTarget,
} from './client/connect';
export {
  type RestoreOutcome,
  reportOf,
  restoreOutcomeOf,
  runReportOf,
  runResultOf,
  vmReportOf,
} from './client/run-result';
export { fullRunReport } from './client/stored-report';
export { loadConfigFile } from './config/load';
export type {
  Config,
  JobConfig,
  Mode,
  PoolConfig,
  RemoteConfig,
  ScheduleConfig,
} from './core/config/schema';
export { type ConfigResult, formatProblems, parseConfigText, validateConfig } from './core/config/validate';
export {
  BACKUP_JOB_WORKFLOW,
  type BackupJobInput,
  manualRunWorkflowId,
  scheduleWorkflowId,
} from './core/job-input';
export { FAILURE_TYPES, reportOfFailure } from './core/outcome-failure';
export type {
  ErrorInfo,
  RunProgress,
  RunReport,
  RunResult,
  Status,
  StepReport,
  VmReport,
} from './core/run-report';
export { durationMs, runOutcome, throughput, vmOutcome } from './core/run-report';
export { SA as SEARCH_ATTRIBUTES } from './core/search-attributes';
export { MAIN_QUEUE } from './core/task-queues';
