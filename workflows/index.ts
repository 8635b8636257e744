// The workflow types the worker bundles.
export { backupBatch } from './backup-batch';
export { backupJob, runProgressQuery, runReportQuery } from './backup-job';
export { backupVm, vmReportQuery } from './backup-vm';
export { healthCheck } from './health-check';
export { jobRunGuard } from './job-guard';
export { restoreFiles } from './restore-files';
export { restoreProgressQuery, restoreVm } from './restore-vm';
