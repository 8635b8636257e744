// Which earlier snapshot a delta export is computed from (reference xo-backups.md §5.2), and why a
// disk falls back to a full. Pure: the caller lists the job's snapshots and what the remotes hold.

export interface JobSnapshot {
  uuid: string;
  datetime: string; // xo:backup:datetime, <ts> form
  scheduleId?: string;
  exported: boolean;
  deltaChainLength: number;
  /** live VDI uuid → this snapshot's VDI uuid */
  vdis: Readonly<Record<string, string>>;
}

export interface BaseChoice {
  base?: JobSnapshot;
  /** chain length the new backup will have: 0 for a full */
  deltaChainLength: number;
  reason: string;
}

export function chooseBaseSnapshot(
  snapshots: readonly JobSnapshot[],
  fullInterval: number,
  excludeUuid?: string,
): BaseChoice {
  const exported = snapshots
    .filter((s) => s.exported && s.uuid !== excludeUuid)
    .sort((a, b) => b.datetime.localeCompare(a.datetime));
  const base = exported[0];
  if (!base)
    return { deltaChainLength: 0, reason: 'no exported snapshot of this job to compute a delta from' };
  if (fullInterval !== 0 && fullInterval <= base.deltaChainLength + 1) {
    return {
      deltaChainLength: 0,
      reason: `full interval reached (${base.deltaChainLength + 1} of ${fullInterval})`,
    };
  }
  return {
    base,
    deltaChainLength: base.deltaChainLength + 1,
    reason: `delta from the snapshot of ${base.datetime}`,
  };
}

export interface DiskPlan {
  liveVdiUuid: string;
  /** the base snapshot's VDI: present = delta export */
  baseVdiUuid?: string;
  baseDatetime?: string;
  reason: string;
}

/**
 * Per disk: delta when the base snapshot has this disk and every target remote holds its VHD,
 * else full with the reason. `remoteHasBase(liveVdi)` lists the remotes missing the base VHD.
 */
export function planDisks(
  liveVdiUuids: readonly string[],
  choice: BaseChoice,
  remotesMissingBase: (liveVdiUuid: string) => readonly string[],
): DiskPlan[] {
  return liveVdiUuids.map((liveVdiUuid) => {
    if (!choice.base) return { liveVdiUuid, reason: `full: ${choice.reason}` };
    const baseVdiUuid = choice.base.vdis[liveVdiUuid];
    if (!baseVdiUuid) return { liveVdiUuid, reason: 'full: new disk (not in the base snapshot)' };
    const missing = remotesMissingBase(liveVdiUuid);
    if (missing.length) {
      return {
        liveVdiUuid,
        reason: `full: base backup of ${choice.base.datetime} missing or broken on ${missing.join(', ')}`,
      };
    }
    return {
      liveVdiUuid,
      baseVdiUuid,
      baseDatetime: choice.base.datetime,
      reason: `delta from ${choice.base.datetime}`,
    };
  });
}
