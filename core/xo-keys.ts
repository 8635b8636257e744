// The other_config keys Xen Orchestra writes on backup snapshots (reference xo-backups.md §5.1).
// Using XO's keys lets XO and xcp-backup recognise each other's job snapshots.
export const XO_KEYS = {
  job: 'xo:backup:job',
  schedule: 'xo:backup:schedule',
  vm: 'xo:backup:vm',
  datetime: 'xo:backup:datetime',
  exported: 'xo:backup:exported',
  deltaChainLength: 'xo:backup:deltaChainLength',
  contentKey: 'xo:backup:contentKey',
  copyOf: 'xo:copy_of',
  baseDeltaVdi: 'xo:base_delta_vdi',
} as const;

/** Our own keys: which run took a snapshot (makes the snapshot step idempotent) and how. */
export const XCPB_KEYS = {
  run: 'xcpb:run',
  snapshotKind: 'xcpb:snapshot-kind',
  createdBy: 'xcpb:created-by', // on VMs this product creates (replicas, restores): never selected
} as const;

/** Tags with a meaning for backups (XO's "backup modifier tags"). */
export const TAGS = {
  noBackup: 'xo:no-bak',
  memoryBackup: 'xo-memory-backup',
  offlineBackup: 'xo-offline-backup',
} as const;

/** Disks whose name contains this are left out of backups (`ignore_vdis`). */
export const NOBAK_MARK = '[NOBAK]';
