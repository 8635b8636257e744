// Which of a job's snapshots on one VM to delete after a run (the VM side of retention). Pure.

export interface SnapshotEntry {
  uuid: string;
  datetime: string;
  scheduleId?: string;
  exported: boolean;
}

export interface SnapshotRetentionInput {
  mode: 'snapshot' | 'full' | 'delta';
  scheduleId?: string;
  keep: number; // retention.snapshot of the schedule
  snapshots: readonly SnapshotEntry[]; // this job's snapshots of this VM
}

export interface SnapshotVerdict {
  uuid: string;
  datetime: string;
  keep: boolean;
  why: string;
}

export function decideSnapshotRetention(input: SnapshotRetentionInput): SnapshotVerdict[] {
  const newestFirst = [...input.snapshots].sort(
    (a, b) => b.datetime.localeCompare(a.datetime) || a.uuid.localeCompare(b.uuid),
  );
  // Only snapshots whose backup reached a target count, except in snapshot mode where the snapshot
  // is the backup: a cancelled or failed run never leaves its snapshot behind.
  const counts = (s: SnapshotEntry) => input.mode === 'snapshot' || s.exported;
  const ofSchedule = newestFirst.filter((s) => s.scheduleId === input.scheduleId && counts(s));
  const keptBySchedule = new Set(ofSchedule.slice(0, input.keep).map((s) => s.uuid));
  const chainsOnSnapshot = input.mode === 'delta';
  const base = chainsOnSnapshot ? newestFirst.find((s) => s.exported) : undefined;

  return newestFirst.map((s) => {
    if (keptBySchedule.has(s.uuid))
      return {
        uuid: s.uuid,
        datetime: s.datetime,
        keep: true,
        why: `newest ${input.keep} of schedule ${input.scheduleId}`,
      };
    if (base?.uuid === s.uuid)
      return { uuid: s.uuid, datetime: s.datetime, keep: true, why: 'base of the next delta' };
    if (s.scheduleId !== input.scheduleId && counts(s)) {
      return { uuid: s.uuid, datetime: s.datetime, keep: true, why: `belongs to schedule ${s.scheduleId}` };
    }
    return {
      uuid: s.uuid,
      datetime: s.datetime,
      keep: false,
      why: s.exported ? 'beyond snapshot retention' : 'not exported (left by an unfinished run)',
    };
  });
}
