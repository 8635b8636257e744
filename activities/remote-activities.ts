// Activities on the backup remotes: readiness and the per-VM lock, which bases a delta can chain
// on, and retention with crash-safe merges.
import { CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { finishInterruptedMerges, mergeVhdIntoParent, openVhdFile } from '../formats/vhd';
import { applyRetention } from '../remotes/apply-retention';
import { backupPaths, vmBackupDir } from '../remotes/backup-paths';
import type { Remote } from '../remotes/remote';
import { cleanTemporaryFiles } from '../remotes/repository';
import { readVhdParentFromHeader } from '../remotes/vhd-parent';
import { acquireVmLock, refreshVmLock, VmLockedError, vmLockRefreshMs } from '../remotes/vm-lock';
import type { BackupActivities, TargetOutcome } from './contract';
import type { RemoteRegistry } from './transfer-activities';

/** The keeper heartbeats this often whatever the refresh period (the heartbeat timeout is 30 s). */
const KEEPER_HEARTBEAT_MS = 5_000;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The newest `<ts>` among the VM's backups on a remote (`<ts>.json` / `<ts>.xva`), if any. */
async function newestBackupName(remote: Remote, vmUuid: string): Promise<string | undefined> {
  const names = await remote.list(vmBackupDir(vmUuid)).catch(() => [] as string[]);
  return names
    .map((n) => /^(\d{8}T\d{6}Z)\.(json|xva)$/.exec(n)?.[1])
    .filter((ts): ts is string => ts !== undefined)
    .sort()
    .at(-1);
}

async function vhdUuid(remote: Remote, vhdPath: string): Promise<string | undefined> {
  const local = remote.localPath(vhdPath);
  if (!local || !(await remote.exists(vhdPath))) return undefined;
  const file = await openVhdFile(local).catch(() => undefined);
  if (!file) return undefined;
  try {
    return file.uuid;
  } finally {
    await file.close();
  }
}

export function createRemoteActivities(
  remotes: RemoteRegistry,
  /** A run holds its VM lock across activities; a holder silent for longer than this loses it. */
  lockStaleAfterMs: number,
  /** told of each merge done (the worker's metrics) */
  onMerge: (remoteId: string, seconds: number) => void = () => {},
): Pick<
  BackupActivities,
  'prepareRemotes' | 'releaseRemotes' | 'holdVmLocks' | 'remotesMissingBase' | 'applyRemoteRetention'
> {
  const lockOptions = { staleAfterMs: lockStaleAfterMs };
  return {
    async prepareRemotes({ remoteIds, vmUuid, owner }) {
      return Promise.all(
        remoteIds.map(async (remoteId): Promise<TargetOutcome> => {
          try {
            const remote = remotes(remoteId);
            await remote.checkWritable();
            await acquireVmLock(remote, vmUuid, owner, lockOptions);
            await cleanTemporaryFiles(remote, vmUuid);
            return { remoteId, ok: true, newestBackup: await newestBackupName(remote, vmUuid) };
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
          const lock = await acquireVmLock(remote, vmUuid, owner, lockOptions);
          // Temporary files of attempts that died mid-write (their retry wrote its own).
          await cleanTemporaryFiles(remote, vmUuid);
          await lock.release();
        } catch {}
      }
    },

    async holdVmLocks({ remoteIds, vmUuid, owner }) {
      const ctx = Context.current();
      const every = vmLockRefreshMs(lockStaleAfterMs);
      let refreshedAt = 0;
      for (;;) {
        if (Date.now() - refreshedAt >= every) {
          refreshedAt = Date.now();
          for (const remoteId of remoteIds) {
            try {
              await refreshVmLock(remotes(remoteId), vmUuid, owner, lockOptions);
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
        const paths = backupPaths(vmUuid, disk.baseDatetime);
        missing[disk.chainVdiUuid] = [];
        for (const remoteId of remoteIds) {
          const remote = remotes(remoteId);
          // The base backup must be complete (its metadata exists) and its VHD must be the base snapshot's.
          const complete = await remote.exists(paths.metadata).catch(() => false);
          const uuid = complete ? await vhdUuid(remote, paths.vhd(jobId, disk.chainVdiUuid)) : undefined;
          if (uuid !== disk.baseVdiUuid) missing[disk.chainVdiUuid].push(remoteId);
        }
      }
      return missing;
    },

    async applyRemoteRetention(req) {
      const remote = remotes(req.remoteId);
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
      const report = await applyRetention(
        remote,
        req.vmUuid,
        {
          scheduleId: req.scheduleId ?? '',
          mode: req.mode,
          remote: Math.max(1, req.retention.remote),
          longTerm,
          timeZone: req.timezone,
        },
        {
          readVhdParent: readVhdParentFromHeader,
          finishInterruptedMerges: (dir) =>
            finishInterruptedMerges(dir, {
              onProgress: (done: number, total: number) =>
                Context.current().heartbeat({ merge: dir, done, total }),
            }),
          mergeVhdIntoParent: async (child) => {
            const started = performance.now();
            const merged = await mergeVhdIntoParent(child, {
              onProgress: (done: number, total: number) =>
                Context.current().heartbeat({ merge: child, done, total }),
            });
            onMerge(req.remoteId, (performance.now() - started) / 1000);
            return merged;
          },
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
