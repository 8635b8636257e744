// Every activity of a backup run, built from the worker's dependencies.
import type { BackupActivities } from './contract';
import { keepingAlive } from './keep-alive';
import { createMetadataActivities } from './metadata-activities';
import type { PoolRegistry } from './pools';
import { createRemoteActivities } from './remote-activities';
import { createRestoreActivities } from './restore-activities';
import type { RestoreActivities } from './restore-contract';
import { createTransferActivities, type RemoteRegistry } from './transfer-activities';
import { createVmActivities } from './vm-activities';

export interface ActivityDeps {
  pools: PoolRegistry;
  remotes: RemoteRegistry;
  /** told of each merge done by retention (the worker's metrics) */
  onMerge?: (remoteId: string, seconds: number) => void;
}

export function createBackupActivities({
  pools,
  remotes,
  onMerge,
}: ActivityDeps): BackupActivities & RestoreActivities {
  return {
    // Exports and merges heartbeat their progress; the others heartbeat while they run.
    ...keepingAlive(createVmActivities(pools)),
    ...createTransferActivities(pools, remotes),
    ...createRemoteActivities(remotes, onMerge),
    ...keepingAlive(createMetadataActivities(pools, remotes)),
    ...createRestoreActivities(pools, remotes),
  };
}

export type { BackupActivities } from './contract';
export type { RemoteRegistry } from './transfer-activities';
