// Activity options per task queue: timeouts and retries in one place.
import { ActivityCancellationType, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { BackupActivities } from '../activities/contract';
import { MAIN_QUEUE, type PoolQueueKind, poolQueue } from '../core/task-queues';

const retry = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };

// A cancelled run waits until its activities have stopped: cleanup must not delete a snapshot, or
// release a VM's lock, while an export of it is still streaming.
const cancellationType = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;

// `summary`: what the Web UI shows for the activity ("export disk xvda of db-prod-01 → nas").

/** Activities on the main queue: remotes and bookkeeping. */
export function mainActivities(summary?: string) {
  return proxyActivities<BackupActivities>({
    summary,
    taskQueue: MAIN_QUEUE,
    startToCloseTimeout: '2h',
    heartbeatTimeout: '60s',
    retry,
    cancellationType,
  });
}

/**
 * Cheap bookkeeping (a VM's preflight, the remotes' lock and probe, which bases they hold, the
 * metadata JSON, unlock) as local activities: run by the worker that runs the workflow, recorded as
 * a marker, with no task-queue round trip (~50-100 ms each for a scheduled activity, a few ms
 * local). Each is idempotent (the same owner takes its own lock again, the metadata is written to a
 * temporary name and renamed), so a worker that dies mid-way and the replay that runs it again do
 * no harm. The main worker knows every configured pool (VM selection already reads them all); the
 * pools' slot limits bound snapshots, exports and imports, never these reads. The bound replaces
 * the heartbeat timeout's: a frozen remote or pool is given up and retried.
 */
export function localActivities(summary?: string) {
  return proxyLocalActivities<BackupActivities>({
    summary,
    startToCloseTimeout: '2m',
    retry,
    cancellationType,
  });
}

/**
 * The VM lock keeper: runs as long as the VM's run works under its locks (so no start-to-close
 * bound of its own beyond a week); a dead worker is noticed by the heartbeat timeout and the keeper
 * is started again elsewhere, well within the lock's stale period (minutes).
 */
export function lockKeeperActivities() {
  return proxyActivities<BackupActivities>({
    taskQueue: MAIN_QUEUE,
    startToCloseTimeout: '7d',
    heartbeatTimeout: '30s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s' }, // until the lock is lost
    // Not waited for: its refreshes only touch existing files, so one racing with releaseRemotes
    // cannot bring a released lock back (remotes/vm-lock.ts), and a VM's run ends without a
    // heartbeat's delay.
    cancellationType: ActivityCancellationType.TRY_CANCEL,
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
export function cleanupActivities(poolId: string, summary?: string) {
  return proxyActivities<BackupActivities>({
    summary,
    taskQueue: poolQueue(poolId, 'ops'),
    ...poolTimeouts.ops,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 40 },
  });
}

export function poolActivities(poolId: string, kind: PoolQueueKind, summary?: string) {
  return proxyActivities<BackupActivities>({
    summary,
    taskQueue: poolQueue(poolId, kind),
    retry,
    cancellationType,
    ...poolTimeouts[kind],
  });
}

/**
 * Sending the run's report: retried for about five minutes, then given up (the run does not fail
 * for it). Not cancellable once started: a report goes out whole or not at all.
 */
export function reportActivities(summary: string) {
  return proxyActivities<BackupActivities>({
    summary,
    taskQueue: MAIN_QUEUE,
    startToCloseTimeout: '1m',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 8 },
  });
}
