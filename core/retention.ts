// Retention as a pure function that explains itself (restic's `forget` policy, Proxmox's prune
// simulator), following Xen Orchestra's rules (`_getOldEntries.mjs`):
// - a schedule only judges its own backups (same scheduleId and mode); others are kept untouched;
// - the newest `remote` good backups are kept ("last N");
// - long-term retention (GFS): for each period, walking from newest to oldest, the first N distinct
//   calendar buckets that hold a backup are counted and the OLDEST backup of each is kept (XO keeps the
//   oldest, so a kept weekly is the one that has been there longest);
// - anything kept by any rule survives.
// Our one departure, on purpose: broken backups do not count toward N and are removed, so failed runs
// can never push the last good backup out.
import {
  assertTimeZone,
  type BucketOffsets,
  RETENTION_PERIODS,
  type RetentionPeriod,
  retentionBucket,
} from './backup-time';

export type BackupMode = 'full' | 'delta';

export interface RetentionCandidate {
  id: string;
  /** epoch ms */
  timestamp: number;
  scheduleId: string;
  mode: BackupMode;
  /** false for a backup that cannot be restored (missing disk, unreadable metadata…) */
  ok: boolean;
  /** why it is not ok, for the explanation */
  problem?: string;
}

export interface RetentionPolicy {
  /** The schedule whose backups are judged. */
  scheduleId: string;
  mode: BackupMode;
  /** Keep the last N good backups of this schedule (XO's `exportRetention`); at least 1. */
  remote: number;
  /** Keep the oldest backup of each of the last N days/weeks/months/years holding one (0 = off). */
  longTerm?: Partial<Record<RetentionPeriod, number>>;
  /** XO's optional bucket offsets (first hour of the day, first day of the week…). */
  bucketOffsets?: BucketOffsets;
  /** IANA zone the calendar buckets are computed in (the schedule's timezone). */
  timeZone: string;
}

export interface KeptBackup {
  id: string;
  reasons: string[];
  /** XO's metadata `tags` for the long-term buckets it holds: `daily=2026-11-25`. */
  tags: string[];
}

export interface RemovedBackup {
  id: string;
  reason: string;
}

export interface RetentionDecision {
  keep: KeptBackup[];
  remove: RemovedBackup[];
  /** One line per backup, oldest first: what a prune simulator would print. */
  describe(): string[];
}

/** Throws a RangeError naming the field if the policy cannot be applied. */
export function validateRetentionPolicy(policy: RetentionPolicy): void {
  if (!Number.isInteger(policy.remote) || policy.remote < 1) {
    throw new RangeError(
      `retention.remote must be an integer ≥ 1 (got ${JSON.stringify(policy.remote)}): keeping 0 backups would delete the one just made`,
    );
  }
  for (const [period, count] of Object.entries(policy.longTerm ?? {})) {
    if (!RETENTION_PERIODS.includes(period as RetentionPeriod)) {
      throw new RangeError(`retention.longTerm.${period} is not a period (daily, weekly, monthly, yearly)`);
    }
    if (!Number.isInteger(count) || (count as number) < 0) {
      throw new RangeError(
        `retention.longTerm.${period} must be an integer ≥ 0 (got ${JSON.stringify(count)})`,
      );
    }
  }
  assertTimeZone(policy.timeZone);
}

/** Oldest first; equal times ordered by id so every run decides the same way. */
export function byTimeThenId(
  a: { timestamp: number; id: string },
  b: { timestamp: number; id: string },
): number {
  return a.timestamp - b.timestamp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export function decideRetention(
  backups: readonly RetentionCandidate[],
  policy: RetentionPolicy,
): RetentionDecision {
  validateRetentionPolicy(policy);
  const ids = new Set<string>();
  for (const b of backups) {
    if (ids.has(b.id)) throw new Error(`duplicate backup id ${JSON.stringify(b.id)}`);
    ids.add(b.id);
  }

  const sorted = [...backups].sort(byTimeThenId);
  const reasons = new Map<string, string[]>();
  const tags = new Map<string, string[]>();
  const removeReason = new Map<string, string>();
  const add = (map: Map<string, string[]>, id: string, value: string) => {
    const list = map.get(id) ?? [];
    list.push(value);
    map.set(id, list);
  };

  const ours = sorted.filter((b) => b.scheduleId === policy.scheduleId && b.mode === policy.mode);
  for (const b of sorted) {
    if (b.scheduleId !== policy.scheduleId) add(reasons, b.id, `other schedule (${b.scheduleId})`);
    else if (b.mode !== policy.mode) add(reasons, b.id, `other mode (${b.mode})`);
  }
  for (const b of ours) {
    if (!b.ok) removeReason.set(b.id, `broken${b.problem ? `: ${b.problem}` : ''} (not counted)`);
  }

  const goodNewestFirst = ours.filter((b) => b.ok).reverse();
  goodNewestFirst.slice(0, policy.remote).forEach((b, index) => {
    add(reasons, b.id, `last ${policy.remote} (#${index + 1})`);
  });

  for (const period of RETENTION_PERIODS) {
    const count = policy.longTerm?.[period] ?? 0;
    if (count === 0) continue;
    // Buckets in the order they are met from the newest backup; the oldest member wins each.
    const oldestInBucket = new Map<string, RetentionCandidate>();
    for (const b of goodNewestFirst) {
      const bucket = retentionBucket(period, b.timestamp, policy.timeZone, policy.bucketOffsets);
      if (!oldestInBucket.has(bucket) && oldestInBucket.size === count) continue;
      oldestInBucket.set(bucket, b);
    }
    for (const [bucket, b] of oldestInBucket) {
      add(reasons, b.id, `${period} ${bucket}`);
      add(tags, b.id, `${period}=${bucket}`);
    }
  }

  const keep: KeptBackup[] = [];
  const remove: RemovedBackup[] = [];
  for (const b of sorted) {
    const broken = removeReason.get(b.id);
    const why = reasons.get(b.id);
    if (broken !== undefined) remove.push({ id: b.id, reason: broken });
    else if (why !== undefined) keep.push({ id: b.id, reasons: why, tags: tags.get(b.id) ?? [] });
    else remove.push({ id: b.id, reason: outsideReason(policy) });
  }

  return {
    keep,
    remove,
    describe: () =>
      sorted.map((b) => {
        const kept = keep.find((k) => k.id === b.id);
        return kept
          ? `keep   ${b.id}: ${kept.reasons.join(', ')}`
          : `remove ${b.id}: ${remove.find((r) => r.id === b.id)!.reason}`;
      }),
  };
}

function outsideReason(policy: RetentionPolicy): string {
  const periods = RETENTION_PERIODS.filter((p) => (policy.longTerm?.[p] ?? 0) > 0).map(
    (p) => `${policy.longTerm![p]} ${p}`,
  );
  return `older than the last ${policy.remote}${periods.length ? ` and not kept by ${periods.join(', ')}` : ''}`;
}

// ---------------------------------------------------------------------------------------------------
// Delta chains: what removing backups means for the VHD files (XO's `cleanVm` merge rule, §5.4).
//
// A VHD is needed while a kept backup references it or it is an ancestor of one. Removing the backups
// of needed-but-unreferenced VHDs therefore means merging: the child's blocks go into the parent file,
// which takes the child's identity (UUID) and then the child's NAME — so a kept backup's metadata
// keeps pointing at the same path and its children's parent locators stay valid. Unreferenced VHDs
// with no kept descendant are simply deleted, newest first.

/** One backup as the chain planner sees it: the VHD files its metadata references. */
export interface ChainBackup {
  id: string;
  /** VHD paths the backup references (same form as VhdLink.path); empty for a full (XVA) backup. */
  vhds: readonly string[];
  /** What the metadata says of each VHD (path → differencing); a stale flag gets an update-metadata. */
  differencing?: Readonly<Record<string, boolean>>;
}

/** A VHD file present on the remote and its parent file (null for a full/dynamic VHD). */
export interface VhdLink {
  path: string;
  parent: string | null;
}

export type RetentionOperation =
  /** Merge `child` into `parent`; afterwards the merged file is at `child` and `parent` is gone. */
  | { kind: 'merge'; child: string; parent: string }
  /** The kept backup's metadata: this VHD is now a full (differencing false) or still a delta. */
  | { kind: 'update-metadata'; backupId: string; vhd: string; differencing: boolean }
  /** Delete the backup's metadata (and, for a full backup, its XVA and checksum). */
  | { kind: 'delete-backup'; backupId: string }
  | { kind: 'delete-vhd'; path: string };

export interface RetentionPlan {
  /** In execution order: merges, metadata updates, backup deletions, VHD deletions (leaf first). */
  operations: RetentionOperation[];
  describe(): string[];
}

export function describeOperation(op: RetentionOperation): string {
  switch (op.kind) {
    case 'merge':
      return `merge ${op.child} into its parent ${op.parent} (the merged file takes the name ${op.child})`;
    case 'update-metadata':
      return `update ${op.backupId}: ${op.vhd} is now ${op.differencing ? 'a delta of a kept backup' : 'a full disk'}`;
    case 'delete-backup':
      return `delete backup ${op.backupId}`;
    case 'delete-vhd':
      return `delete ${op.path} (no kept backup needs it)`;
  }
}

/**
 * Operations that remove `remove` from the backups without ever leaving a kept backup with a missing
 * VHD or a VHD whose parent is gone, at any step (so a crash between two steps is harmless and a
 * re-run of the same decision continues where it stopped).
 */
export function planChainRetention(input: {
  backups: readonly ChainBackup[];
  vhds: readonly VhdLink[];
  remove: readonly string[];
}): RetentionPlan {
  const removeIds = new Set(input.remove);
  const known = new Set(input.backups.map((b) => b.id));
  for (const id of removeIds) {
    if (!known.has(id)) throw new Error(`cannot remove unknown backup ${JSON.stringify(id)}`);
  }

  const nodes = new Map(input.vhds.map((v) => [v.path, v]));
  const childOf = new Map<string, string>();
  for (const v of [...input.vhds].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    if (v.parent === null || !nodes.has(v.parent)) continue;
    const sibling = childOf.get(v.parent);
    if (sibling !== undefined) {
      throw new Error(`VHD ${v.parent} has two children (${sibling}, ${v.path}): refusing to plan a merge`);
    }
    childOf.set(v.parent, v.path);
  }

  const kept = input.backups.filter((b) => !removeIds.has(b.id));
  const referenced = new Set(kept.flatMap((b) => b.vhds));

  const merges: RetentionOperation[] = [];
  const updates: RetentionOperation[] = [];
  const vhdDeletions: RetentionOperation[] = [];
  const seen = new Set<string>();
  /** kept VHD → whether it is still differencing once merged into its removed ancestors */
  const mergedInto = new Map<string, boolean>();

  const runStarts = [...nodes.values()]
    .filter(
      (v) =>
        !referenced.has(v.path) && (v.parent === null || !nodes.has(v.parent) || referenced.has(v.parent)),
    )
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  for (const start of runStarts) {
    // A run: unreferenced VHDs from `start` down to (excluding) the first referenced descendant.
    const run = [start.path];
    seen.add(start.path);
    let next = childOf.get(start.path);
    while (next !== undefined && !referenced.has(next)) {
      if (seen.has(next)) throw new Error(`VHD parent links loop at ${next}`);
      seen.add(next);
      run.push(next);
      next = childOf.get(next);
    }
    if (next === undefined) {
      for (const path of [...run].reverse()) vhdDeletions.push({ kind: 'delete-vhd', path });
      continue;
    }
    for (let i = 1; i < run.length; i++) merges.push({ kind: 'merge', child: run[i]!, parent: run[i - 1]! });
    merges.push({ kind: 'merge', child: next, parent: run[run.length - 1]! });
    mergedInto.set(next, start.parent !== null);
  }
  // Unreferenced VHDs inside a loop of parent links were never reached from a run start.
  for (const v of nodes.values()) {
    if (!referenced.has(v.path) && !seen.has(v.path)) throw new Error(`VHD parent links loop at ${v.path}`);
  }

  // Metadata must say what the files are: after a merge, and also when an earlier run crashed between
  // its merge and its metadata update (the flag is then stale; this makes the re-run finish the job).
  for (const b of kept) {
    for (const vhd of b.vhds) {
      const node = nodes.get(vhd);
      if (node === undefined) continue; // missing: the backup is broken, nothing to say
      const differencing = mergedInto.get(vhd) ?? node.parent !== null;
      if (
        mergedInto.has(vhd) ||
        (b.differencing?.[vhd] !== undefined && b.differencing[vhd] !== differencing)
      ) {
        updates.push({ kind: 'update-metadata', backupId: b.id, vhd, differencing });
      }
    }
  }

  const backupDeletions: RetentionOperation[] = input.backups
    .filter((b) => removeIds.has(b.id))
    .map((b) => ({ kind: 'delete-backup', backupId: b.id }));

  const operations = [...merges, ...updates, ...backupDeletions, ...vhdDeletions];
  return { operations, describe: () => operations.map(describeOperation) };
}
