// Activity options per task queue: timeouts and retries in one place.
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { BackupActivities } from '../activities/contract';
import { MAIN_QUEUE, type PoolQueueKind, poolQueue } from '../core/task-queues';

const retry = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };

// A cancelled run waits until its activities have stopped: cleanup must not delete a snapshot, or
// release a VM's lock, while an export of it is still streaming.
const cancellationType = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;

/** Activities on the main queue: remotes and bookkeeping. */
export function mainActivities() {
  return proxyActivities<BackupActivities>({
    taskQueue: MAIN_QUEUE,
    startToCloseTimeout: '2h',
    heartbeatTimeout: '60s',
    retry,
    cancellationType,
  });
}

const poolTimeouts: Record<PoolQueueKind, { startToCloseTimeout: string; heartbeatTimeout?: string }> = {
  // These activities heartbeat while they run (activities/keep-alive), so a dead worker is noticed
  // in 30 s, not after the whole start-to-close timeout.
  ops: { startToCloseTimeout: '15m', heartbeatTimeout: '30s' },
  snapshot: { startToCloseTimeout: '30m', heartbeatTimeout: '30s' },
  // Exports stream for hours; the heartbeat (bytes so far) is what detects a dead worker.
  'disk-export': { startToCloseTimeout: '24h', heartbeatTimeout: '30s' },
  'vm-export': { startToCloseTimeout: '24h', heartbeatTimeout: '30s' },
  import: { startToCloseTimeout: '24h', heartbeatTimeout: '30s' },
};

/**
 * Snapshot cleanup on the pool's ops queue, retried for minutes: it must eventually succeed, and a
 * cancelled export may still hold the snapshot's disks for a few seconds (VDI_IN_USE).
 */
export function cleanupActivities(poolId: string) {
  return proxyActivities<BackupActivities>({
    taskQueue: poolQueue(poolId, 'ops'),
    ...poolTimeouts.ops,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 40 },
  });
}

export function poolActivities(poolId: string, kind: PoolQueueKind) {
  return proxyActivities<BackupActivities>({
    taskQueue: poolQueue(poolId, kind),
    retry,
    cancellationType,
    ...poolTimeouts[kind],
  });
}
