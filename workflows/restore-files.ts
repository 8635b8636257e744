// File-level restore for other programs: the asked paths of one filesystem of a delta backup,
// written as an archive on a remote or into a folder on the worker (one activity; its heartbeats
// carry the bytes written). Fails (non-retryably) with the reason when the files cannot be read.
import { proxyActivities } from '@temporalio/workflow';
import type {
  FileRestoreActivities,
  RestoreFilesInput,
  RestoreFilesResult,
} from '../activities/file-restore-contract';
import { MAIN_QUEUE } from '../core/task-queues';

export const RESTORE_FILES_WORKFLOW = 'restoreFiles';

const { restoreFiles: restoreFilesActivity } = proxyActivities<FileRestoreActivities>({
  taskQueue: MAIN_QUEUE,
  startToCloseTimeout: '24h',
  heartbeatTimeout: '60s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
});

export async function restoreFiles(input: RestoreFilesInput): Promise<RestoreFilesResult> {
  return restoreFilesActivity(input);
}
