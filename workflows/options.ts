// Activity options per task queue: timeouts and retries in one place.
import { proxyActivities } from '@temporalio/workflow';
import type { BackupActivities } from '../activities/contract';
import { MAIN_QUEUE, type PoolQueueKind, poolQueue } from '../core/task-queues';

const retry = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };

/** Activities on the main queue: remotes and bookkeeping. */
export function mainActivities() {
  return proxyActivities<BackupActivities>({
    taskQueue: MAIN_QUEUE,
    startToCloseTimeout: '2h',
    heartbeatTimeout: '60s',
    retry,
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
};

export function poolActivities(poolId: string, kind: PoolQueueKind) {
  return proxyActivities<BackupActivities>({
    taskQueue: poolQueue(poolId, kind),
    retry,
    ...poolTimeouts[kind],
  });
}
