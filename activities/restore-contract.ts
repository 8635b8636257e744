// What the restore and health-check workflows ask of activities. Types only (workflows import it
// with `import type`).
import type { BackupRef } from '../core/restore-backup-id';
import type { RestorePurpose } from '../core/restore-naming';

export interface BackupDiskPlan {
  /** the disk's key in the metadata (`vdis` / `vhds` key: the snapshot VDI's ref) */
  key: string;
  /** the chain's tip, relative to the remote root */
  vhdPath: string;
  nameLabel: string;
  nameDescription: string;
  virtualSize: number;
  /** files from the tip to the full disk */
  chainLength: number;
  /** bytes of data the chain holds (allocated blocks × 2 MiB) */
  dataBytes: number;
  /** the memory image of a checkpoint */
  suspend: boolean;
}

/** A backup checked from end to end and what restoring it takes; nothing is created yet. */
export interface BackupPlan extends BackupRef {
  backupId: string;
  mode: 'full' | 'delta';
  jobId: string;
  timestamp: number;
  vmName: string;
  vmTags: string[];
  /** bytes a restore sends: the XVA's size, or the chains' data */
  restoreBytes: number;
  xvaPath?: string;
  disks: BackupDiskPlan[];
  /** the backed-up snapshot was a checkpoint with memory: the VM is restored Suspended */
  suspended: boolean;
}

export interface RestoredVdi {
  key: string;
  uuid: string;
  nameLabel: string;
  virtualSize: number;
  suspend: boolean;
}

export interface RestoreTarget {
  poolId: string;
  srUuid: string;
  srName: string;
}

export interface RestoreMarks {
  /** restore id (the workflow id): every object created carries it, so cleanup finds them */
  restoreId: string;
  purpose: RestorePurpose;
}

export interface RestoredVm {
  vmUuid: string;
  vmName: string;
  powerState: string;
  vdis: RestoredVdi[];
  /** how each VIF's network was chosen */
  networks: string[];
}

export interface RestoreActivities {
  // main queue: reads the remote
  inspectBackup(req: BackupRef): Promise<BackupPlan>;
  // target pool, ops queue
  resolveRestoreSr(req: { poolId: string; sr: string }): Promise<RestoreTarget>;
  createRestoreVdis(
    req: RestoreMarks & { target: RestoreTarget; disks: BackupDiskPlan[] },
  ): Promise<RestoredVdi[]>;
  createRestoredVm(
    req: RestoreMarks & {
      poolId: string;
      backup: BackupRef;
      vdis: RestoredVdi[];
      newMacAddresses: boolean;
    },
  ): Promise<RestoredVm>;
  startRestoredVm(req: { poolId: string; vmUuid: string }): Promise<string>;
  /** resolves once the VM's guest agent reported (VM_guest_metrics); fails after timeoutMs */
  waitForGuestAgent(req: {
    poolId: string;
    vmUuid: string;
    timeoutMs: number;
  }): Promise<{ waitedMs: number }>;
  /** removes every VM and VDI this restore created (by its mark); idempotent */
  removeRestored(req: { poolId: string; restoreId: string }): Promise<{ vms: string[]; vdis: string[] }>;
  // target pool, disk-export queue
  importRestoreDisk(req: {
    poolId: string;
    backup: BackupRef;
    vhdPath: string;
    vdiUuid: string;
  }): Promise<{ bytes: number }>;
  // target pool, vm-export queue
  importRestoreXva(
    req: RestoreMarks & { target: RestoreTarget; backup: BackupRef; xvaPath: string },
  ): Promise<RestoredVm & { bytes: number }>;
}
