// Every activity of a restore and of a health check, built from the worker's dependencies.
import type { BackupRef } from '../core/restore-backup-id';
import type { Remote } from '../remotes/remote';
import { asFailure } from './failures';
import { keepingAlive } from './keep-alive';
import type { PoolRegistry } from './pools';
import type { RestoreActivities } from './restore-contract';
import { inspectBackup } from './restore-inspect';
import { createRestoreTransferActivities } from './restore-transfer';
import { createRestoreXapiActivities } from './restore-xapi';

/** Wraps every activity so XAPI errors reach the workflow with their code (SR_FULL…). */
function withFailures<T extends object>(what: string, activities: T): T {
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [
      name,
      async (...args: unknown[]) => {
        try {
          return await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
        } catch (err) {
          throw asFailure(`${what} ${name}`, err);
        }
      },
    ]),
  ) as T;
}

export function createRestoreActivities(
  pools: PoolRegistry,
  remotes: (remoteId: string) => Remote,
): RestoreActivities {
  const client = (poolId: string) => pools.client(poolId);
  return withFailures('restore:', {
    // Heartbeats while they run, so a worker killed mid-call is noticed within the heartbeat timeout.
    ...keepingAlive({ inspectBackup: (ref: BackupRef) => inspectBackup(remotes(ref.remoteId), ref) }),
    ...keepingAlive(createRestoreXapiActivities(client, remotes)),
    ...createRestoreTransferActivities(client, remotes),
  } satisfies RestoreActivities);
}
