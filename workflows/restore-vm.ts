// Restore of one VM backup onto any SR of any configured pool (DESIGN §3, xo-backups.md §7):
// inspect (the whole chain checked before anything is created) → a full backup's XVA streamed into
// `PUT /import`, or for a delta: VDIs created, each disk's chain sent as one VHD, then the VM, its
// VBDs and VIFs → start on request. A failure or a cancellation removes what was created, in a
// non-cancellable scope.
import {
  ActivityCancellationType,
  type ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  BackupPlan,
  RestoreActivities,
  RestoredVm,
  RestoreTarget,
} from '../activities/restore-contract';
import { FAILURE_TYPES, failedWith } from '../core/outcome-failure';
import { type BackupRef, parseBackupId } from '../core/restore-backup-id';
import type { RestorePurpose } from '../core/restore-naming';
import type { ErrorInfo } from '../core/run-report';
import { parseStartInput, RestoreInputSchema, type RestoreStartInput } from '../core/start-contract';
import { MAIN_QUEUE, type PoolQueueKind, poolQueue } from '../core/task-queues';
import { restoreSummary } from '../core/ui-text';
import { errorInfo } from './report';

export const RESTORE_VM_WORKFLOW = 'restoreVm';

/** The start contract's restore input (core/start-contract.ts): backupId, poolId, sr, start?, newMacAddresses?. */
export type RestoreVmInput = RestoreStartInput;

export interface RestoreVmResult extends RestoredVm {
  backupId: string;
  poolId: string;
  srUuid: string;
  mode: 'full' | 'delta';
  bytes: number;
}

export type RestorePhase = 'inspect' | 'create' | 'transfer' | 'start' | 'done' | 'cleanup' | 'failed';

export interface RestoreProgress {
  phase: RestorePhase;
  /** the phase a failed restore was in when it failed */
  failedIn?: RestorePhase;
  backupId: string;
  plan?: Pick<BackupPlan, 'mode' | 'vmName' | 'restoreBytes' | 'disks'>;
  vmUuid?: string;
}

export const restoreProgressQuery = defineQuery<RestoreProgress>('progress');

const retry = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };

export function mainRestoreActivities() {
  return proxyActivities<RestoreActivities>({
    taskQueue: MAIN_QUEUE,
    startToCloseTimeout: '1h',
    heartbeatTimeout: '60s',
    retry,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
}

export function poolRestoreActivities(poolId: string, kind: PoolQueueKind, startToCloseTimeout = '15m') {
  const streaming = kind === 'disk-export' || kind === 'vm-export';
  return proxyActivities<RestoreActivities>({
    taskQueue: poolQueue(poolId, kind),
    startToCloseTimeout: streaming ? '24h' : startToCloseTimeout,
    heartbeatTimeout: '30s',
    retry,
    // A cancelled restore waits for the running call to stop before it removes what was created,
    // so nothing is created after the cleanup.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
}

/**
 * The restore itself, shared by `restoreVm` and the health check. `onPlan` sees the checked backup
 * before anything is created (the health check decides there whether to go on).
 */
export async function restoreBackup(
  o: RestoreVmInput & { restoreId: string; purpose: RestorePurpose },
  progress: RestoreProgress,
  onPlan?: (plan: BackupPlan) => boolean,
): Promise<RestoreVmResult | undefined> {
  const backup: BackupRef = parseBackupId(o.backupId);
  const ops = poolRestoreActivities(o.poolId, 'ops');
  const marks = { restoreId: o.restoreId, purpose: o.purpose };
  progress.phase = 'inspect';
  const plan = await mainRestoreActivities().inspectBackup(backup);
  progress.plan = {
    mode: plan.mode,
    vmName: plan.vmName,
    restoreBytes: plan.restoreBytes,
    disks: plan.disks,
  };
  if (onPlan && !onPlan(plan)) return undefined;
  const target: RestoreTarget = await ops.resolveRestoreSr({ poolId: o.poolId, sr: o.sr });
  try {
    let vm: RestoredVm;
    let bytes = 0;
    if (plan.mode === 'full') {
      progress.phase = 'transfer';
      const imported = await poolRestoreActivities(o.poolId, 'vm-export').importRestoreXva({
        ...marks,
        target,
        backup,
        xvaPath: plan.xvaPath!,
      });
      bytes = imported.bytes || plan.restoreBytes;
      vm = imported;
    } else {
      progress.phase = 'create';
      const vdis = await ops.createRestoreVdis({ ...marks, target, disks: plan.disks });
      progress.phase = 'transfer';
      const disk = poolRestoreActivities(o.poolId, 'disk-export');
      // Every import settles before a failure is handled, so the cleanup never races a running one.
      const settled = await Promise.allSettled(
        plan.disks.map((d) =>
          disk.importRestoreDisk({
            poolId: o.poolId,
            backup,
            vhdPath: d.vhdPath,
            vdiUuid: vdis.find((v) => v.key === d.key)!.uuid,
          }),
        ),
      );
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      bytes = settled.reduce((n, r) => n + (r.status === 'fulfilled' ? r.value.bytes : 0), 0);
      progress.phase = 'create';
      vm = await ops.createRestoredVm({
        ...marks,
        poolId: o.poolId,
        backup,
        vdis,
        newMacAddresses: o.newMacAddresses ?? false,
      });
    }
    progress.vmUuid = vm.vmUuid;
    if (o.start) {
      progress.phase = 'start';
      vm = { ...vm, powerState: await ops.startRestoredVm({ poolId: o.poolId, vmUuid: vm.vmUuid }) };
    }
    progress.phase = 'done';
    return { ...vm, backupId: o.backupId, poolId: o.poolId, srUuid: target.srUuid, mode: plan.mode, bytes };
  } catch (err) {
    progress.failedIn = progress.phase;
    progress.phase = 'cleanup';
    await CancellationScope.nonCancellable(() =>
      poolRestoreActivities(o.poolId, 'ops').removeRestored({ poolId: o.poolId, restoreId: o.restoreId }),
    );
    progress.phase = 'failed';
    throw err;
  }
}

/** The details of a failed restore or health check: how far it went, and why it stopped. */
export interface RestoreFailureReport extends RestoreProgress {
  error: ErrorInfo;
}

/** Ends a failed restore (or health check) as Failed in Temporal, with how far it got. */
export function restoreFailure(
  type: typeof FAILURE_TYPES.restore | typeof FAILURE_TYPES.healthCheck,
  err: unknown,
  progress: RestoreProgress,
): ApplicationFailure {
  const error = errorInfo(err);
  const failedIn = progress.failedIn ?? progress.phase;
  const report: RestoreFailureReport = { ...progress, phase: 'failed', failedIn, error };
  const what = type === FAILURE_TYPES.restore ? 'restore' : 'health check';
  const message = `${what} of ${progress.backupId} failed (${failedIn}): ${error.message}`;
  return failedWith(type, message, report, err instanceof Error ? err : undefined);
}

export async function restoreVm(start: RestoreVmInput): Promise<RestoreVmResult> {
  // The start contract first: a bad input fails here, naming the field, before anything runs.
  const input = parseStartInput(RESTORE_VM_WORKFLOW, RestoreInputSchema, start);
  const progress: RestoreProgress = { phase: 'inspect', backupId: input.backupId };
  setHandler(restoreProgressQuery, () => progress);
  // What it restores where, in the Web UI even for a start that gave no static summary.
  setCurrentDetails(restoreSummary(input.backupId, input.poolId, input.sr));
  try {
    const result = await restoreBackup(
      { ...input, restoreId: workflowInfo().workflowId, purpose: 'restore' },
      progress,
    );
    return result!;
  } catch (err) {
    if (isCancellation(err)) throw err;
    throw restoreFailure(FAILURE_TYPES.restore, err, progress);
  }
}
