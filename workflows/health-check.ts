// The backup health check (xo-backups.md §7): restore the backup just made onto the schedule's
// health-check SR, start it, wait for its guest agent to report, then delete it, whatever happened.
// The VM is marked created-by health-check and tagged xo:no-bak, so no selection ever picks it; the
// time allowed grows with the bytes restored unless the schedule sets one.
import {
  CancellationScope,
  executeChild,
  isCancellation,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ScheduleConfig } from '../core/config/schema';
import { FAILURE_TYPES } from '../core/outcome-failure';
import { healthCheckApplies, healthCheckTimeoutMs } from '../core/restore-health-timeout';
import { MAIN_QUEUE } from '../core/task-queues';
import type { StepRecorder } from './report';
import {
  poolRestoreActivities,
  type RestoreProgress,
  restoreBackup,
  restoreFailure,
  restoreProgressQuery,
} from './restore-vm';

export interface HealthCheckInput {
  backupId: string;
  poolId: string;
  sr: string;
  tags?: string[];
  timeout?: string;
}

export interface HealthCheckResult {
  status: 'success' | 'skipped';
  detail: string;
  vmUuid?: string;
  restoredBytes?: number;
  timeoutMs?: number;
  waitedMs?: number;
}

export async function healthCheck(input: HealthCheckInput): Promise<HealthCheckResult> {
  const progress: RestoreProgress = { phase: 'inspect', backupId: input.backupId };
  setHandler(restoreProgressQuery, () => progress);
  const restoreId = workflowInfo().workflowId;
  const started = Date.now();
  let timeoutMs = 0;
  let skipped: string | undefined;
  try {
    const restored = await restoreBackup(
      { ...input, restoreId, purpose: 'health-check', start: true, newMacAddresses: true },
      progress,
      (plan) => {
        if (!healthCheckApplies(plan.vmTags, input.tags)) {
          skipped = `VM has none of the tags ${input.tags?.join(', ')}`;
          return false;
        }
        timeoutMs = healthCheckTimeoutMs(plan.restoreBytes, input.timeout);
        return true;
      },
    );
    if (!restored) return { status: 'skipped', detail: skipped ?? 'not applicable' };
    const left = Math.max(1_000, timeoutMs - (Date.now() - started));
    const ops = poolRestoreActivities(input.poolId, 'ops', `${Math.ceil(left / 1000) + 120}s`);
    const { waitedMs } = await ops.waitForGuestAgent({
      poolId: input.poolId,
      vmUuid: restored.vmUuid,
      timeoutMs: left,
    });
    return {
      status: 'success',
      detail: `restored ${restored.vdis.length} disks (${restored.bytes} bytes) to ${input.sr}, started, guest agent reported after ${Math.round(waitedMs / 1000)} s`,
      vmUuid: restored.vmUuid,
      restoredBytes: restored.bytes,
      timeoutMs,
      waitedMs,
    };
  } catch (err) {
    if (isCancellation(err)) throw err;
    throw restoreFailure(FAILURE_TYPES.healthCheck, err, progress);
  } finally {
    // Whatever happened, the check VM and its disks go.
    await CancellationScope.nonCancellable(() =>
      poolRestoreActivities(input.poolId, 'ops').removeRestored({ poolId: input.poolId, restoreId }),
    );
  }
}

/**
 * The `healthCheck` step of a VM's backup run: the check as a child workflow, its outcome in the
 * report. A failed check fails the step (and so the VM's outcome) but not the rest of the run.
 */
export async function healthCheckStep(
  steps: StepRecorder,
  check: ScheduleConfig['healthCheck'],
  backup: { backupId?: string; poolId: string },
): Promise<void> {
  if (!check || !backup.backupId) return;
  const input: HealthCheckInput = { ...check, backupId: backup.backupId, poolId: backup.poolId };
  try {
    await steps.run(
      'healthCheck',
      () =>
        executeChild(healthCheck, {
          taskQueue: MAIN_QUEUE,
          workflowId: `${workflowInfo().workflowId}/health-check`,
          args: [input],
        }),
      { target: check.sr, done: (r) => ({ status: r.status, detail: r.detail, bytes: r.restoredBytes }) },
    );
  } catch (err) {
    if (isCancellation(err)) throw err;
    // recorded as a failed step
  }
}
