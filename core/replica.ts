// What a replica is (DR and CR, xo-backups.md §6.1): its name, tags, marks and blocked operations,
// which VMs of an SR are complete replicas or leftovers of an interrupted import, and which
// replicas retention deletes. Pure: records in, decisions out; the XAPI calls are in
// activities/sr-writer-activities.ts.
import { readableBackupTime } from './restore-naming';
import { XCPB_KEYS, XO_KEYS } from './xo-keys';

export type ReplicaKind = 'dr' | 'cr';

/** XO's tags, so XO users find their replicas where they expect them. */
export const REPLICA_TAGS = {
  dr: 'Disaster Recovery',
  cr: 'Continuous Replication',
  haDisabled: 'HA disabled',
} as const;

/** XO's reason text on a replica's blocked `start` / `start_on`. */
export const START_BLOCKED_REASON = 'Start operation for this vm is blocked, clone it if you want to use it.';

/** `xcpb:created-by` on replicas (never selected by smart mode, never health-checked by another job). */
export const REPLICA_PURPOSE = 'replica';

/**
 * other_config key on every VDI a CR import creates, until its replica is complete: leftovers of an
 * interrupted run are found by it.
 */
export const REPLICA_IMPORT_KEY = 'xcpb:replica-import';

export interface ReplicaOwner {
  vmUuid: string;
  jobId: string;
  scheduleId?: string;
}

/** `web - nightly-dr - (2026-01-15 02:00:00 UTC)`, as XO names replicas `<name> - <job> - (<ts>)`. */
export function replicaName(vmName: string, jobName: string, datetime: string): string {
  return `${vmName} - ${jobName} - (${readableBackupTime(datetime)})`;
}

/** The replica's tags: the source's, the kind's, and `HA disabled` when HA had to be cleared. */
export function replicaTags(sourceTags: readonly string[], kind: ReplicaKind, haCleared: boolean): string[] {
  return [...new Set([...sourceTags, REPLICA_TAGS[kind], ...(haCleared ? [REPLICA_TAGS.haDisabled] : [])])];
}

/** Source keys that describe the source's own backups or identity: never copied onto a replica. */
const DROPPED_PREFIXES = ['xo:backup:', 'xcpb:', 'xo:copy_of', 'xo:base_delta', 'mac_seed', 'import_task'];

/**
 * The replica VM's other_config. `xo:backup:sr` is what marks a replica complete: it is only
 * written by {@link completeReplicaOtherConfig}, after everything else.
 */
export function replicaOtherConfig(
  source: Record<string, string> | undefined,
  o: ReplicaOwner & { datetime: string; copyOf: string },
): Record<string, string> {
  const kept = Object.fromEntries(
    Object.entries(source ?? {}).filter(([k]) => !DROPPED_PREFIXES.some((p) => k.startsWith(p))),
  );
  return {
    ...kept,
    [XO_KEYS.job]: o.jobId,
    [XO_KEYS.vm]: o.vmUuid,
    [XO_KEYS.datetime]: o.datetime,
    [XO_KEYS.copyOf]: o.copyOf,
    ...(o.scheduleId ? { [XO_KEYS.schedule]: o.scheduleId } : {}),
    [XCPB_KEYS.createdBy]: REPLICA_PURPOSE,
  };
}

export const SR_KEY = 'xo:backup:sr';

export function completeReplicaOtherConfig(
  current: Record<string, string>,
  srUuid: string,
): Record<string, string> {
  return { ...current, [SR_KEY]: srUuid };
}

export interface VmEntry {
  uuid: string;
  isSnapshot: boolean;
  otherConfig: Record<string, string>;
}

const ofOwner = (oc: Record<string, string>, o: ReplicaOwner) =>
  oc[XO_KEYS.vm] === o.vmUuid &&
  oc[XO_KEYS.job] === o.jobId &&
  (oc[XO_KEYS.schedule] ?? undefined) === (o.scheduleId ?? undefined);

/** A complete replica of this VM, job and schedule on this SR (a VM, not its snapshots). */
export function isCompleteReplica(vm: VmEntry, o: ReplicaOwner, srUuid: string): boolean {
  return !vm.isSnapshot && ofOwner(vm.otherConfig, o) && vm.otherConfig[SR_KEY] === srUuid;
}

/**
 * What an interrupted transfer of this VM and schedule left (§6.1): a VM carrying the run's keys but
 * no `xo:backup:sr` (an XVA import carries the source snapshot's keys from the start; a CR replica
 * gets its keys at creation). Snapshots are the source pool's own job snapshots: never leftovers.
 */
export function isLeftoverReplica(vm: VmEntry, o: ReplicaOwner): boolean {
  return !vm.isSnapshot && ofOwner(vm.otherConfig, o) && vm.otherConfig[SR_KEY] === undefined;
}

/** Every replica import task of this VM, job and schedule starts with this. */
export function replicaImportTaskPrefix(o: ReplicaOwner): string {
  return `xcpb replica import ${o.vmUuid}/${o.jobId}/${o.scheduleId ?? 'manual'} `;
}

/**
 * The XAPI task name of one import of a run into the target pool (`what`: the SR of a DR import,
 * the target VDI of a CR disk). Named, an import happens once however often its activity runs
 * (activities/import-once); the task is forgotten once the replica is complete.
 */
export function replicaImportTaskName(o: ReplicaOwner, runId: string, what: string): string {
  return `${replicaImportTaskPrefix(o)}${runId} ${what}`;
}

/**
 * A CR VDI a killed transfer left between its creation (a clone carries its base's keys) and its
 * import mark: a replica VDI of this VM and schedule, not a snapshot, used by no VM, not marked
 * importing (those are found by their mark). Failover clones lose the keys (`replicaMarksRemoved`),
 * so a user's disk is never one.
 */
export function isOrphanReplicaVdi(
  vdi: { isSnapshot: boolean; otherConfig: Record<string, string>; usedByVm: boolean },
  o: ReplicaOwner,
): boolean {
  return (
    !vdi.isSnapshot &&
    !vdi.usedByVm &&
    ofOwner(vdi.otherConfig, o) &&
    vdi.otherConfig[XCPB_KEYS.createdBy] === REPLICA_PURPOSE &&
    vdi.otherConfig[REPLICA_IMPORT_KEY] === undefined
  );
}

/** other_config without what marks a replica (and its disks): a failover clone is an ordinary VM. */
export function replicaMarksRemoved(oc: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(oc).filter(
      ([k]) => !k.startsWith('xo:backup:') && k !== XO_KEYS.copyOf && k !== XCPB_KEYS.createdBy,
    ),
  );
}

export interface ReplicaEntry {
  uuid: string;
  datetime: string;
}

/** Replicas to delete: all but the `keep` newest (the new one included, so it is never deleted). */
export function replicasBeyondRetention(replicas: readonly ReplicaEntry[], keep: number): ReplicaEntry[] {
  const newestFirst = [...replicas].sort(
    (a, b) => b.datetime.localeCompare(a.datetime) || a.uuid.localeCompare(b.uuid),
  );
  return newestFirst.slice(Math.max(keep, 1));
}

/**
 * Why a RAM-enabled replica may not resume on the target: its memory image holds the source CPU's
 * state, and XAPI refuses (or the guest crashes) on a CPU with another vendor or fewer features.
 * Undefined when the CPUs look alike.
 */
export function cpuMismatch(
  source: Record<string, string>,
  target: Record<string, string>,
): string | undefined {
  const differs = ['vendor', 'features'].filter((k) => (source[k] ?? '') !== (target[k] ?? ''));
  if (differs.length === 0) return undefined;
  const show = (c: Record<string, string>) =>
    [c.vendor, c.modelname].filter(Boolean).join(' ') || 'unknown CPU';
  return `the target host's CPU (${show(target)}) differs from the source's (${show(source)}) in ${differs.join(' and ')}: resuming the RAM replica may fail there`;
}

/**
 * The signal a slot lease (activity `holdImportSlot`) sends its workflow once it holds one of the
 * target pool's import slots; its argument is the lease's name.
 */
export const IMPORT_SLOT_SIGNAL = 'importSlotHeld';
