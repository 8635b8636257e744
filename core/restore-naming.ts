// Names and marks of the VMs a restore or a health check creates. Pure.
import { parseBackupTimestamp } from './backup-time';
import { TAGS, XCPB_KEYS } from './xo-keys';

/** other_config key on everything a restore creates: the restore's id (its workflow id). */
export const RESTORE_KEY = 'xcpb:restore';
/** other_config key on a restored VDI: which disk of the backup it holds (the metadata's VDI ref). */
export const RESTORE_DISK_KEY = 'xcpb:restore-disk';
/** other_config key on a restored VM: the backup id it came from. */
export const RESTORED_FROM_KEY = 'xcpb:restored-from';

export type RestorePurpose = 'restore' | 'health-check';

/** `20260115T020000Z` → `2026-01-15 02:00:00 UTC` (the basename itself when it is not a time). */
export function readableBackupTime(basename: string): string {
  const ms = parseBackupTimestamp(basename);
  if (ms === undefined) return basename;
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** `web (restored 2026-01-15 02:00:00 UTC)`, `web (health check 2026-01-15 02:00:00 UTC)`. */
export function restoredVmName(name: string, basename: string, purpose: RestorePurpose = 'restore'): string {
  return `${name} (${purpose === 'restore' ? 'restored' : 'health check'} ${readableBackupTime(basename)})`;
}

/** Tags of the new VM: the source's, plus a marker; a health-check VM is also `xo:no-bak`. */
export function restoredVmTags(sourceTags: readonly string[], purpose: RestorePurpose): string[] {
  const extra = purpose === 'restore' ? ['restored from backup'] : ['xcpb health check', TAGS.noBackup];
  return [...new Set([...sourceTags, ...extra])];
}

/** Keys of the source's other_config that describe backups or identity and must not be copied. */
const DROPPED_PREFIXES = ['xo:backup:', 'xcpb:', 'xo:copy_of', 'xo:base_delta', 'mac_seed', 'import_task'];

/** The restored VM's other_config: the source's without backup bookkeeping, plus our marks. */
export function restoredOtherConfig(
  source: Record<string, string> | undefined,
  marks: { restoreId: string; backupId: string; purpose: RestorePurpose },
): Record<string, string> {
  const kept = Object.fromEntries(
    Object.entries(source ?? {}).filter(([k]) => !DROPPED_PREFIXES.some((p) => k.startsWith(p))),
  );
  return {
    ...kept,
    [XCPB_KEYS.createdBy]: marks.purpose,
    [RESTORE_KEY]: marks.restoreId,
    [RESTORED_FROM_KEY]: marks.backupId,
  };
}
