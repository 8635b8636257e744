// What the workflows ask of activities. Types only: workflows import this file with `import type`,
// so no I/O code reaches the workflow bundle.
import type { Compression, JobConfig } from '../core/config/schema';
import type { DiskPlan, JobSnapshot } from '../core/delta-base';
import type { SnapshotMode } from '../core/snapshot-mode';
import type { SnapshotVerdict } from '../core/snapshot-retention';
import type { SelectionResult } from '../core/vm-selection';
import type { ReportActivities } from './report-activities';
import type { RunReportActivities } from './run-report-activities';

export interface VmRef {
  poolId: string;
  vmUuid: string;
}

export interface DiskInfo {
  vdiUuid: string;
  name: string;
  size: number;
  /** left out because its name carries [NOBAK] */
  ignored: boolean;
}

export interface Preflight {
  vmName: string;
  powerState: string;
  tags: string[];
  snapshotMode: SnapshotMode;
  snapshotModeWhy: string;
  disks: DiskInfo[];
  /** set when a disk's VDI chain is too long to snapshot safely */
  unhealthyChain?: string;
}

export interface SnapshotInfo {
  uuid: string;
  datetime: string; // <ts> of the backup, taken right after the snapshot
  kind: 'snapshot' | 'checkpoint' | 'quiesced';
  note?: string; // e.g. why a quiesced snapshot fell back to a normal one
  /** live VDI uuid → snapshot VDI uuid, for the disks in the snapshot */
  vdis: Record<string, string>;
  suspendVdiUuid?: string;
  /** the job's snapshots of this VM once this one is taken (the delta base is chosen among them) */
  jobSnapshots?: JobSnapshot[];
}

export interface TargetOutcome {
  remoteId: string;
  ok: boolean;
  error?: string;
  /** prepareRemotes: the newest `<ts>` of a backup of this VM already on the remote */
  newestBackup?: string;
}

export interface TransferResult {
  bytes: number;
  path: string; // relative to the VM's backup directory
  differencing: boolean;
  targets: TargetOutcome[];
  /** the SR imports fed by the same export (activities/sr-writer-contract.ts) */
  imports?: ImportOutcome[];
}

/** An SR import fed by an export, next to the remotes (export once, write to all). */
export interface ImportTarget {
  /** the SR writer's id, echoed in the outcome */
  id: string;
  poolId: string;
  /** `PUT /import?sr_id=` (DR): the SR; the replica's owner, whose leftovers go first */
  srUuid?: string;
  owner?: { vmUuid: string; jobId: string; scheduleId?: string };
  /** `PUT /import_raw_vdi?format=vhd` (CR): the prepared VDI this disk goes into */
  vdiUuid?: string;
  /**
   * The import's XAPI task name (core/replica replicaImportTaskName): a retried export finds the
   * import an earlier attempt completed instead of importing again (activities/import-once).
   */
  taskName?: string;
}

export interface ImportOutcome {
  id: string;
  ok: boolean;
  error?: string;
  /** XAPI's error code when the import failed (SR_FULL…) */
  code?: string;
  /** DR: the imported VM */
  vmUuid?: string;
}

export interface ExportDiskRequest extends VmRef {
  jobId: string;
  runId: string;
  datetime: string;
  snapshotVdiUuid: string;
  /** the directory of the chain: the live VDI's uuid (the suspend VDI's own uuid for memory) */
  chainVdiUuid: string;
  baseVdiUuid?: string;
  baseDatetime?: string;
  remoteIds: string[];
  imports?: ImportTarget[];
}

export interface ExportVmRequest extends VmRef {
  jobId: string;
  datetime: string;
  snapshotUuid: string;
  compression: Compression;
  remoteIds: string[];
  imports?: ImportTarget[];
}

export interface MetadataDisk {
  snapshotVdiUuid: string;
  path: string;
  differencing: boolean;
}

export interface WriteMetadataRequest extends VmRef {
  jobId: string;
  scheduleId?: string;
  mode: 'full' | 'delta';
  datetime: string;
  snapshotUuid: string;
  remoteIds: string[];
  disks: MetadataDisk[];
  xvaPath?: string;
  size: number;
  timezone: string;
}

export interface RetentionRequest {
  remoteId: string;
  vmUuid: string;
  jobId: string;
  scheduleId?: string;
  mode: 'full' | 'delta';
  retention: {
    remote: number;
    longTerm?: { daily?: number; weekly?: number; monthly?: number; yearly?: number };
  };
  timezone: string;
}

export interface RetentionResult {
  remoteId: string;
  kept: number;
  removed: string[];
  merged: string[];
  explanation: string[];
}

/**
 * One page of a run's selection: at most `limit` VMs whose uuid sorts after `after`, sorted by name;
 * `next` is the `after` of the next page. Paged so that no activity result grows with the pools
 * (10,000 VMs are ~1 MB of selection; Temporal warns at 512 KB per payload).
 */
export interface SelectionPage {
  selected: SelectionResult['selected'];
  /** VMs the job's selection left out (all pages), counted only: the list grows with the pools */
  excludedCount: number;
  /** uuids named by the job that no pool has (first page only) */
  missing: string[];
  next?: string;
  /** histories recorded before paging (no `limit`) carry the list */
  excluded?: SelectionResult['excluded'];
}

export interface BackupActivities extends ReportActivities, RunReportActivities {
  // main queue
  selectVms(req: Pick<JobConfig, 'vms'> & { after?: string; limit?: number }): Promise<SelectionPage>;
  prepareRemotes(req: { remoteIds: string[]; vmUuid: string; owner: string }): Promise<TargetOutcome[]>;
  releaseRemotes(req: { remoteIds: string[]; vmUuid: string; owner: string }): Promise<void>;
  /**
   * Keeps the run's VM locks on these remotes alive until cancelled (the lock keeper): refreshes them
   * and heartbeats, so a worker's death stops the refreshes and is noticed by the heartbeat timeout.
   * Fails (non-retryable, LOCK_LOST) if a lock was taken over meanwhile.
   */
  holdVmLocks(req: { remoteIds: string[]; vmUuid: string; owner: string }): Promise<void>;
  remotesMissingBase(req: {
    remoteIds: string[];
    vmUuid: string;
    jobId: string;
    disks: { chainVdiUuid: string; baseVdiUuid: string; baseDatetime: string }[];
  }): Promise<Record<string, string[]>>;
  applyRemoteRetention(req: RetentionRequest): Promise<RetentionResult>;
  // pool ops queue
  preflightVm(req: VmRef & { snapshotMode: SnapshotMode }): Promise<Preflight>;
  listJobSnapshots(req: VmRef & { jobId: string }): Promise<JobSnapshot[]>;
  shutdownVm(req: VmRef): Promise<void>;
  startVm(req: VmRef): Promise<void>;
  writeMetadata(req: WriteMetadataRequest): Promise<TargetOutcome[]>;
  markSnapshotExported(req: {
    poolId: string;
    snapshotUuid: string;
    deltaChainLength: number;
  }): Promise<void>;
  cleanupSnapshots(
    req: VmRef & {
      jobId: string;
      scheduleId?: string;
      mode: JobConfig['mode'];
      keep: number;
    },
  ): Promise<SnapshotVerdict[]>;
  deleteSnapshot(req: { poolId: string; snapshotUuid: string }): Promise<void>;
  // pool snapshot queue
  takeSnapshot(
    req: VmRef & {
      jobId: string;
      scheduleId?: string;
      runId: string;
      mode: SnapshotMode;
      ignoreVdiUuids: string[];
      /** a `<ts>` the new backup's must come after (the newest backup on the targets) */
      after?: string;
    },
  ): Promise<SnapshotInfo>;
  // pool disk-export queue
  exportDisk(req: ExportDiskRequest): Promise<TransferResult>;
  // pool vm-export queue
  exportVm(req: ExportVmRequest): Promise<TransferResult>;
}

export type { DiskPlan, ReportActivities };
