// Every activity of a backup run, built from the worker's dependencies.
import type { BackupActivities } from './contract';
import { keepingAlive } from './keep-alive';
import { createMetadataActivities } from './metadata-activities';
import type { PoolRegistry } from './pools';
import { createRemoteActivities } from './remote-activities';
import { createRestoreActivities } from './restore-activities';
import type { RestoreActivities } from './restore-contract';
import { createSrWriterActivities } from './sr-writer-activities';
import type { SrWriterActivities } from './sr-writer-contract';
import { createTransferActivities, type RemoteRegistry } from './transfer-activities';
import { createVmActivities } from './vm-activities';

export interface ActivityDeps {
  pools: PoolRegistry;
  remotes: RemoteRegistry;
}

export function createBackupActivities({
  pools,
  remotes,
}: ActivityDeps): BackupActivities & RestoreActivities & SrWriterActivities {
  return {
    // Exports and merges heartbeat their progress; the others heartbeat while they run.
    ...keepingAlive(createVmActivities(pools)),
    ...createTransferActivities(pools, remotes),
    ...createRemoteActivities(remotes),
    ...keepingAlive(createMetadataActivities(pools, remotes)),
    ...createRestoreActivities(pools, remotes),
    ...keepingAlive(createSrWriterActivities(pools)),
  };
}

export type { BackupActivities } from './contract';
export type { RemoteRegistry } from './transfer-activities';
