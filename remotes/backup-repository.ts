// The backups on one remote, as one object (Xen Orchestra's RemoteAdapter): listing, chain walks,
// metadata, the VM lock and retention, all through the narrow Remote and nothing else. Activities and
// the CLI hold a BackupRepository; the CLI's is read-only (a Remote view that refuses every write).
import type { RetentionPolicy } from '../core/retention';
import type { RunReport, VmReport } from '../core/run-report';
import { checkVhd, type MergeOptions, type VhdChain } from '../formats/vhd';
import { applyRetention, type RetentionReport, removeBackups } from './apply-retention';
import type { BackupMetadata } from './backup-metadata';
import { backupPaths } from './backup-paths';
import { readOnly } from './readonly';
import type { Remote } from './remote';
import {
  type BackupEntry,
  cleanTemporaryFiles,
  deleteBackup,
  listAllBackups,
  listVmBackups,
  newestBackupName,
  writeBackupMetadata,
} from './repository';
import {
  finishRunReport,
  readRunReport,
  readRunReportParts,
  removeRunReportParts,
  writeRunReportPart,
} from './run-reports';
import { vhdPathOn } from './vhd-directory';
import { finishInterruptedMergesOnRemote, mergeVhdOnRemote } from './vhd-merge';
import { isFile, openRemoteChain, type RemoteVhd, readVhdParent, readVhdUuid } from './vhd-store';
import {
  acquireVmLock,
  DEFAULT_VM_LOCK_STALE_MS,
  refreshVmLock,
  type VmLock,
  type VmLockOptions,
  vmLockRefreshMs,
} from './vm-lock';

export class BackupRepository {
  constructor(readonly remote: Remote) {}

  /** For listing and restore tools: every write refused by the remote view itself. */
  static readOnly(remote: Remote): BackupRepository {
    return new BackupRepository(readOnly(remote));
  }

  get id(): string {
    return this.remote.id;
  }

  checkWritable(): Promise<void> {
    return this.remote.checkWritable();
  }

  /** Every backup of a VM, oldest first, each chain followed to its full disk. */
  listVmBackups(vmUuid: string): Promise<BackupEntry[]> {
    return listVmBackups(this.remote, vmUuid, { readVhdParent });
  }

  listAllBackups(): Promise<BackupEntry[]> {
    return listAllBackups(this.remote, { readVhdParent });
  }

  /** The newest `<ts>` of a VM's backups: what the next delta chains on, if its disks match. */
  newestBackupName(vmUuid: string): Promise<string | undefined> {
    return newestBackupName(this.remote, vmUuid);
  }

  /** The disk identity (VHD footer UUID) of a complete backup's disk; undefined when there is none. */
  async diskUuid(
    vmUuid: string,
    basename: string,
    jobId: string,
    vdiUuid: string,
  ): Promise<string | undefined> {
    const paths = backupPaths(vmUuid, basename);
    if (!(await this.remote.exists(paths.metadata))) return undefined;
    return readVhdUuid(this.remote, vhdPathOn(this.remote, paths.vhd(jobId, vdiUuid)));
  }

  /** A disk's whole chain, tip first, read through ranged reads of the remote. */
  openChain(vhdPath: string): Promise<VhdChain<RemoteVhd>> {
    return openRemoteChain(this.remote, vhdPath);
  }

  /**
   * Deep checks of every file of an open chain (footers, BAT overlaps, locators). A VHD directory's
   * parts were checked when it was opened (checksums) and each block's size is checked when read.
   */
  async checkChain(chain: VhdChain<RemoteVhd>): Promise<void> {
    for (const file of chain.files) if (isFile(file)) await checkVhd(file);
  }

  /** Number of VHD files from `vhdPath` to its full disk; undefined when the chain cannot be read. */
  async chainLength(vhdPath: string): Promise<number | undefined> {
    let length = 0;
    let current: string | null = vhdPath;
    while (current !== null) {
      if (++length > 1000) return undefined;
      try {
        current = await readVhdParent(this.remote, current);
      } catch {
        return undefined;
      }
    }
    return length;
  }

  /** Writes a backup's metadata last; its disk paths name this remote's layout (file or alias). */
  writeMetadata(metadata: BackupMetadata): Promise<string> {
    if (metadata.mode !== 'delta') return writeBackupMetadata(this.remote, metadata);
    const vhds = Object.fromEntries(
      Object.entries(metadata.vhds).map(([ref, path]) => [ref, vhdPathOn(this.remote, path)]),
    );
    return writeBackupMetadata(this.remote, { ...metadata, vhds });
  }

  deleteBackup(entry: BackupEntry): Promise<void> {
    return deleteBackup(this.remote, entry);
  }

  cleanTemporaryFiles(vmUuid: string): Promise<string[]> {
    return cleanTemporaryFiles(this.remote, vmUuid);
  }

  lockVm(vmUuid: string, owner: string, options: VmLockOptions): Promise<VmLock> {
    return acquireVmLock(this.remote, vmUuid, owner, options);
  }

  /** Proves `owner`, which holds the VM's lock, is alive (the lock keeper's call); VmLockedError if it lost it. */
  refreshVmLock(vmUuid: string, owner: string, options: VmLockOptions): Promise<void> {
    return refreshVmLock(this.remote, vmUuid, owner, options);
  }

  /**
   * Deletes one backup (`<ts>` of a VM) by the chain rules: a delta that newer backups chain on is
   * merged into its child first. Holds the VM lock for the time it works, refreshed from this
   * process (so Xen Orchestra, and our runs, see it go stale minutes after this process dies).
   */
  async deleteBackupByName(
    vmUuid: string,
    basename: string,
    options: { owner: string; merge?: MergeOptions },
  ): Promise<string[]> {
    const lockOptions = { staleAfterMs: DEFAULT_VM_LOCK_STALE_MS };
    const lock = await this.lockVm(vmUuid, options.owner, lockOptions);
    // A failed refresh is retried by the next tick; the lock is lost only after several.
    const keeper = setInterval(
      () => lock.refresh().catch(() => {}),
      vmLockRefreshMs(lockOptions.staleAfterMs),
    );
    try {
      const { done } = await removeBackups(this.remote, vmUuid, [backupPaths(vmUuid, basename).metadata], {
        readVhdParent,
        mergeVhdIntoParent: (remote, child) => mergeVhdOnRemote(remote, child, options.merge),
        finishInterruptedMerges: (remote, dir) => finishInterruptedMergesOnRemote(remote, dir, options.merge),
      });
      return done;
    } finally {
      clearInterval(keeper);
      await lock.release();
    }
  }

  /** Retention on one VM folder (hold its lock): deletes, and merges in whatever way this remote can. */
  async applyRetention(
    vmUuid: string,
    policy: RetentionPolicy,
    options: {
      dryRun?: boolean;
      merge?: MergeOptions;
      /** told of each merge retention did, with its duration (the worker's metrics) */
      onMerged?: (seconds: number) => void;
    } = {},
  ): Promise<RetentionReport> {
    return applyRetention(
      this.remote,
      vmUuid,
      policy,
      {
        readVhdParent,
        mergeVhdIntoParent: async (remote, child) => {
          const started = performance.now();
          await mergeVhdOnRemote(remote, child, options.merge);
          options.onMerged?.((performance.now() - started) / 1000);
        },
        finishInterruptedMerges: (remote, dir) => finishInterruptedMergesOnRemote(remote, dir, options.merge),
      },
      { dryRun: options.dryRun },
    );
  }

  // Run reports (remotes/run-reports.ts): beside the backups, in xcpb-runs/.

  writeRunReportPart(
    workflowId: string,
    batch: number,
    part: number,
    vms: readonly VmReport[],
  ): Promise<void> {
    return writeRunReportPart(this.remote, workflowId, batch, part, vms);
  }

  readRunReportParts(workflowId: string): Promise<VmReport[]> {
    return readRunReportParts(this.remote, workflowId);
  }

  finishRunReport(report: RunReport, extraParts?: readonly VmReport[]): Promise<RunReport> {
    return finishRunReport(this.remote, report, extraParts);
  }

  removeRunReportParts(workflowId: string): Promise<void> {
    return removeRunReportParts(this.remote, workflowId);
  }

  readRunReport(workflowId: string): Promise<RunReport> {
    return readRunReport(this.remote, workflowId);
  }
}
