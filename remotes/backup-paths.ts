// Xen Orchestra's layout of VM backups on a remote (xo-backups.md §4.1). Pure naming, no I/O.
//   xo-vm-backups/<vmUuid>/<ts>.json                         metadata, written last
//   xo-vm-backups/<vmUuid>/<ts>.xva (+ .xva.checksum)         full backups
//   xo-vm-backups/<vmUuid>/vdis/<jobId>/<vdiUuid>/<ts>.vhd    delta backups, one chain per folder
import { formatBackupTimestamp } from '../core/backup-time';

export const VM_BACKUPS_DIR = 'xo-vm-backups';
/** XO's listing cache; we never write it, we delete it when we change the folder so XO rebuilds it. */
export const XO_CACHE_FILE = 'cache.json.gz';

const UUID_LIKE = /^[0-9A-Za-z][0-9A-Za-z._-]*$/;

function assertSegment(kind: string, value: string): void {
  // Ids become folder names: one safe segment each, never `..` or a slash.
  if (!UUID_LIKE.test(value) || value.includes('..')) {
    throw new RangeError(`${kind} ${JSON.stringify(value)} cannot be used as a folder name`);
  }
}

export function vmBackupDir(vmUuid: string): string {
  assertSegment('VM uuid', vmUuid);
  return `${VM_BACKUPS_DIR}/${vmUuid}`;
}

export interface BackupPaths {
  /** `<ts>` */
  basename: string;
  /** Everything below is relative to the remote root. */
  vmDir: string;
  metadata: string;
  xva: string;
  xvaChecksum: string;
  /** Folder of one disk's chain. */
  vhdDir(jobId: string, vdiUuid: string): string;
  vhd(jobId: string, vdiUuid: string): string;
  /** As stored in metadata: `vhds` values are relative to the VM folder, `xva` is `./<ts>.xva`. */
  metadataVhdRef(jobId: string, vdiUuid: string): string;
  metadataXvaRef: string;
}

export function backupPaths(vmUuid: string, timestamp: number | string): BackupPaths {
  const basename = typeof timestamp === 'number' ? formatBackupTimestamp(timestamp) : timestamp;
  const vmDir = vmBackupDir(vmUuid);
  const vhdRef = (jobId: string, vdiUuid: string) => {
    assertSegment('job id', jobId);
    assertSegment('VDI uuid', vdiUuid);
    return `vdis/${jobId}/${vdiUuid}/${basename}.vhd`;
  };
  return {
    basename,
    vmDir,
    metadata: `${vmDir}/${basename}.json`,
    xva: `${vmDir}/${basename}.xva`,
    xvaChecksum: `${vmDir}/${basename}.xva.checksum`,
    vhdDir: (jobId, vdiUuid) => `${vmDir}/vdis/${jobId}/${vdiUuid}`,
    vhd: (jobId, vdiUuid) => `${vmDir}/${vhdRef(jobId, vdiUuid)}`,
    metadataVhdRef: vhdRef,
    metadataXvaRef: `./${basename}.xva`,
  };
}

/** A path written in metadata (relative to the VM folder, maybe `./`-prefixed) → relative to the root. */
export function resolveInVmDir(vmUuid: string, ref: string): string {
  return `${vmBackupDir(vmUuid)}/${ref.replace(/^(\.\/)+/, '')}`;
}

/**
 * Where xcp-backup keeps each run's full report, beside XO's folders (XO ignores unknown ones):
 *   xcpb-runs/<run>/report.json            the whole run report, written when the run ends
 *   xcpb-runs/<run>/parts/<batch>-<n>.json  VM reports written while it runs, merged into report.json
 * `<run>` is the run's workflow id made one safe segment (see runFolderName).
 */
export const RUN_REPORTS_DIR = 'xcpb-runs';

export interface RunReportPaths {
  dir: string;
  report: string;
  partsDir: string;
  part(batch: number, n: number): string;
}

export function runReportPaths(workflowId: string): RunReportPaths {
  const dir = `${RUN_REPORTS_DIR}/${runFolderName(workflowId)}`;
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  return {
    dir,
    report: `${dir}/report.json`,
    partsDir: `${dir}/parts`,
    part: (batch, n) => `${dir}/parts/${pad(batch, 6)}-${pad(n, 4)}.json`,
  };
}

/**
 * A workflow id (`xcpb:nightly:manual-2026-01-15T02:00:00.000Z`) as one folder name, reversibly:
 * letters, digits, `.`, `_` and `-` stay, every other byte becomes `~XX` (so `~` only ever starts an
 * escape and two ids never share a folder); a leading `.` is escaped too (no hidden or `..` names).
 */
export function runFolderName(workflowId: string): string {
  if (workflowId === '') throw new RangeError('a run needs a workflow id');
  const hex = (c: string) =>
    [...new TextEncoder().encode(c)].map((b) => `~${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  return workflowId.replace(/[^A-Za-z0-9._-]/gu, hex).replace(/^\./, '~2E');
}
