// Every activity of a backup run, built from the worker's dependencies.

import type { SmtpConfig } from '../core/config/schema';
import type { BackupActivities } from './contract';
import { createFileRestoreActivities } from './file-restore-activities';
import type { FileRestoreActivities } from './file-restore-contract';
import { keepingAlive } from './keep-alive';
import { createMetadataActivities } from './metadata-activities';
import type { PoolRegistry } from './pools';
import { createRemoteActivities, type RemoteActivityOptions } from './remote-activities';
import { createReportActivities } from './report-activities';
import { createRestoreActivities } from './restore-activities';
import type { RestoreActivities } from './restore-contract';
import { createRunReportActivities, runReportReader } from './run-report-activities';
import { createImportSlotActivities, createSrWriterActivities } from './sr-writer-activities';
import type { ImportSlotActivities, SrWriterActivities } from './sr-writer-contract';
import { createTransferActivities, type RemoteRegistry } from './transfer-activities';
import { createVmActivities } from './vm-activities';

export interface ActivityDeps {
  pools: PoolRegistry;
  remotes: RemoteRegistry;
  /** How long a VM lock lives without a refresh (activities/remote-activities.ts). */
  vmLockStaleMs?: RemoteActivityOptions['vmLockStaleMs'];
  /** the mail server reports go through (config `smtp`) */
  smtp?: SmtpConfig;
  /** How long a remote may take no data before it is dropped from an export (fan-out DEFAULT_STALL_MS). */
  transferStallMs?: number;
  /** told of each merge done by retention (the worker's metrics) */
  onMerge?: (remoteId: string, seconds: number) => void;
}

export function createBackupActivities({
  pools,
  remotes,
  vmLockStaleMs,
  smtp,
  transferStallMs,
  onMerge,
}: ActivityDeps): BackupActivities &
  RestoreActivities &
  FileRestoreActivities &
  SrWriterActivities &
  ImportSlotActivities {
  return {
    // Exports and merges heartbeat their progress; the others heartbeat while they run.
    ...keepingAlive(createVmActivities(pools)),
    ...createTransferActivities(pools, remotes, transferStallMs),
    ...createRemoteActivities(remotes, { vmLockStaleMs, onMerge }),
    ...keepingAlive(createMetadataActivities(pools, remotes)),
    ...createRestoreActivities(pools, remotes),
    ...createFileRestoreActivities(remotes),
    ...createReportActivities(smtp, runReportReader(remotes)),
    ...keepingAlive(createRunReportActivities(remotes)),
    ...keepingAlive(createSrWriterActivities(pools)),
    ...createImportSlotActivities(),
  };
}

export type { BackupActivities } from './contract';
export type { RemoteRegistry } from './transfer-activities';
