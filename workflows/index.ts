// The workflow types the worker bundles.
export { backupJob, runReportQuery } from './backup-job';
export { backupVm, vmReportQuery } from './backup-vm';
export { healthCheck } from './health-check';
export { jobRunGuard } from './job-guard';
export { restoreFiles } from './restore-files';
export { restoreProgressQuery, restoreVm } from './restore-vm';
