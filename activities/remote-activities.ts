// Activities on the backup remotes: readiness and the per-VM lock, which bases a delta can chain
// on, and retention with crash-safe merges.
import { CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { BackupRepository } from '../remotes/backup-repository';
import { DEFAULT_VM_LOCK_STALE_MS, VmLockedError, vmLockRefreshMs } from '../remotes/vm-lock';
import type { BackupActivities, TargetOutcome } from './contract';
import type { RemoteRegistry } from './transfer-activities';

/** The keeper heartbeats this often whatever the refresh period (the heartbeat timeout is 30 s). */
const KEEPER_HEARTBEAT_MS = 5_000;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export interface RemoteActivityOptions {
  /**
   * A run holds its VM lock across activities; a holder silent for longer than this loses it
   * (DEFAULT_VM_LOCK_STALE_MS; short in tests).
   */
  vmLockStaleMs?: number;
  /** told of each merge done (the worker's metrics) */
  onMerge?: (remoteId: string, seconds: number) => void;
}

export function createRemoteActivities(
  remotes: RemoteRegistry,
  { vmLockStaleMs = DEFAULT_VM_LOCK_STALE_MS, onMerge = () => {} }: RemoteActivityOptions = {},
): Pick<
  BackupActivities,
  'prepareRemotes' | 'releaseRemotes' | 'holdVmLocks' | 'remotesMissingBase' | 'applyRemoteRetention'
> {
  const lockOptions = { staleAfterMs: vmLockStaleMs };
  return {
    async prepareRemotes({ remoteIds, vmUuid, owner }) {
      return Promise.all(
        remoteIds.map(async (remoteId): Promise<TargetOutcome> => {
          try {
            const repository = new BackupRepository(remotes(remoteId));
            await repository.checkWritable();
            await repository.lockVm(vmUuid, owner, lockOptions);
            await repository.cleanTemporaryFiles(vmUuid);
            return { remoteId, ok: true, newestBackup: await repository.newestBackupName(vmUuid) };
          } catch (err) {
            return { remoteId, ok: false, error: message(err) };
          }
        }),
      );
    },

    async releaseRemotes({ remoteIds, vmUuid, owner }) {
      for (const remoteId of remoteIds) {
        try {
          // The same owner takes its own lock back at once; another owner's lock is left alone.
          const remote = remotes(remoteId);
          // A vanished or unwritable remote holds no lock of ours, and taking one to release it
          // would recreate its folders where the remote belongs (a mount point gone).
          await remote.checkWritable();
          const repository = new BackupRepository(remote);
          const lock = await repository.lockVm(vmUuid, owner, lockOptions);
          // Temporary files of attempts that died mid-write (their retry wrote its own).
          await repository.cleanTemporaryFiles(vmUuid);
          await lock.release();
        } catch (err) {
          // Not the run's failure (its backup stands); the lock goes stale and is taken over later.
          Context.current().log.warn(`VM lock on ${remoteId} not released: ${message(err)}`, { vmUuid });
        }
      }
    },

    async holdVmLocks({ remoteIds, vmUuid, owner }) {
      const ctx = Context.current();
      const every = vmLockRefreshMs(vmLockStaleMs);
      let refreshedAt = 0;
      for (;;) {
        if (Date.now() - refreshedAt >= every) {
          refreshedAt = Date.now();
          for (const remoteId of remoteIds) {
            try {
              await new BackupRepository(remotes(remoteId)).refreshVmLock(vmUuid, owner, lockOptions);
            } catch (err) {
              if (err instanceof VmLockedError)
                throw ApplicationFailure.nonRetryable(err.message, 'LOCK_LOST');
              // An unreachable remote: the next refresh tries again; the lock goes stale only after several.
            }
          }
        }
        ctx.heartbeat({ refreshedAt });
        try {
          await ctx.sleep(Math.min(every, KEEPER_HEARTBEAT_MS));
        } catch (err) {
          if (err instanceof CancelledFailure) return; // the run is done with the VM: releaseRemotes follows
          throw err;
        }
      }
    },

    async remotesMissingBase({ remoteIds, vmUuid, jobId, disks }) {
      const missing: Record<string, string[]> = {};
      for (const disk of disks) {
        missing[disk.chainVdiUuid] = [];
        for (const remoteId of remoteIds) {
          // The base backup must be complete (its metadata exists) and its VHD must be the base snapshot's.
          const uuid = await new BackupRepository(remotes(remoteId))
            .diskUuid(vmUuid, disk.baseDatetime, jobId, disk.chainVdiUuid)
            .catch(() => undefined);
          if (uuid !== disk.baseVdiUuid) missing[disk.chainVdiUuid].push(remoteId);
        }
      }
      return missing;
    },

    async applyRemoteRetention(req) {
      const repository = new BackupRepository(remotes(req.remoteId));
      const longTerm = req.retention.longTerm;
      const hasPolicy = req.retention.remote > 0 || Object.values(longTerm ?? {}).some((n) => n && n > 0);
      if (!hasPolicy) {
        return {
          remoteId: req.remoteId,
          kept: 0,
          removed: [],
          merged: [],
          explanation: ['no retention set: every backup kept'],
        };
      }
      const report = await repository.applyRetention(
        req.vmUuid,
        {
          scheduleId: req.scheduleId ?? '',
          mode: req.mode,
          remote: Math.max(1, req.retention.remote),
          longTerm,
          timeZone: req.timezone,
        },
        {
          merge: {
            onProgress: (done: number, total: number) =>
              Context.current().heartbeat({ merge: { done, total } }),
          },
          onMerged: (seconds) => onMerge(req.remoteId, seconds),
        },
      );
      return {
        remoteId: req.remoteId,
        kept: report.decision.keep.length,
        removed: report.decision.remove.map((r) => r.id),
        merged: report.plan.operations
          .filter((o) => o.kind === 'merge')
          .map((o) => ('child' in o ? o.child : '')),
        explanation: report.decision.describe(),
      };
    },
  };
}
