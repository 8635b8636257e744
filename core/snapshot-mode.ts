// How a VM is snapshotted: the job's mode, overridden per VM by XO's modifier tags.
import type { JobConfig } from './config/schema';
import { TAGS } from './xo-keys';

export type SnapshotMode = JobConfig['snapshotMode'];

export function effectiveSnapshotMode(
  jobMode: SnapshotMode,
  tags: readonly string[],
): { mode: SnapshotMode; why: string } {
  if (tags.includes(TAGS.offlineBackup)) return { mode: 'offline', why: `VM tag ${TAGS.offlineBackup}` };
  if (tags.includes(TAGS.memoryBackup)) return { mode: 'memory', why: `VM tag ${TAGS.memoryBackup}` };
  return { mode: jobMode, why: 'job setting' };
}
