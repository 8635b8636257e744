// The writer contract (DESIGN §2 "Targets are writers", as XO's runners × writers): one VM's run
// takes ONE export and feeds it to a list of writers. Each writer is prepared (before the
// snapshot), tells which bases it lacks (delta), says what the export must feed it, commits what
// it received, applies its retention and cleans up. A writer that fails is dropped; the others go
// on; the VM fails only when every writer failed.
import type { ImportTarget, SnapshotInfo, TransferResult } from '../../activities/contract';
import type { ScheduleConfig } from '../../core/config/schema';
import type { DiskPlan, JobSnapshot } from '../../core/delta-base';

/** What one export feeds: files on remotes and imports into SRs. */
export interface Feed {
  remoteIds: string[];
  imports: ImportTarget[];
}

/** One export's results, as the writers see them. */
export interface Exported {
  snapshot: SnapshotInfo;
  mode: 'full' | 'delta';
  /** full: the XVA's result; delta: one per disk (the suspend VDI included), by snapshot VDI */
  results: { snapshotVdiUuid?: string; result: TransferResult }[];
  plans: DiskPlan[];
  deltaChainLength: number;
}

export interface Writer {
  /** the report's target: a remote id, or `<pool>/<sr>` */
  readonly label: string;
  /** Before the snapshot. Throws (recorded) when this target cannot take the backup. */
  prepare(): Promise<void>;
  /** The newest backup `<ts>` already on this target: the new one must come after it. */
  newest(): string | undefined;
  /** Delta: chain VDI uuid → the targets of this writer lacking the base (for the report). */
  missingBases(base: JobSnapshot, chainVdiUuids: string[]): Promise<Record<string, string[]>>;
  /** What the export must feed this writer; `disk` is the chain VDI (undefined: the XVA). */
  feed(exported: Omit<Exported, 'results'>): Promise<(disk?: string) => Feed>;
  /** After the export: makes the backup visible. False when nothing of it reached this target. */
  commit(exported: Exported): Promise<boolean>;
  /** Retention, only where this backup landed. */
  retain(): Promise<void>;
  /** A backup id the health check restores, when this writer can offer one. */
  healthCheckSubject(): { backupId: string } | undefined;
  /** Health check of what this writer made by itself (a replica), when it has no backup id. */
  healthCheck?(check: NonNullable<ScheduleConfig['healthCheck']>): Promise<boolean>;
  /** The remotes on which prepare took the VM lock, kept alive by the run's lock keeper. */
  lockedRemotes?(): string[];
  /** Always runs, not cancellable: releases what prepare took, removes a half-done transfer. */
  cleanup(): Promise<void>;
}

export const noFeed: Feed = { remoteIds: [], imports: [] };

export function mergeFeeds(feeds: readonly Feed[]): Feed {
  return {
    remoteIds: feeds.flatMap((f) => f.remoteIds),
    imports: feeds.flatMap((f) => f.imports),
  };
}
