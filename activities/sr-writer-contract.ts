// What the SR writers (DR, CR: workflows/writers/sr-writer.ts) ask of the target pool. Types only.
import type { ReplicaOwner } from '../core/replica';

export interface SrTarget {
  poolId: string;
  srUuid: string;
  srName: string;
}

export interface ReplicaRequest extends ReplicaOwner {
  poolId: string;
  srUuid: string;
}

export interface ReplicaResult {
  vmUuid: string;
  name: string;
  /** the source had HA: cleared on the replica, tagged `HA disabled` */
  haCleared: boolean;
  warnings: string[];
}

export interface ReplicaBases {
  /** chain (live) VDI uuid → the target VDI the delta goes onto (a clone of it) */
  found: Record<string, string>;
  /** chain VDI uuid → why this disk goes full */
  missing: Record<string, string>;
}

// A type (not an interface) so it is a Record of functions, as keepingAlive() takes.
export type SrWriterActivities = {
  /** Resolves the SR (uuid or name) and destroys what an interrupted transfer left. */
  prepareSrTarget(
    req: ReplicaOwner & { poolId: string; sr: string },
  ): Promise<SrTarget & { removed: string[] }>;
  /** Destroys leftovers of this VM and schedule (VMs without `xo:backup:sr`, import VDIs). */
  cleanReplicaLeftovers(req: ReplicaOwner & { poolId: string }): Promise<string[]>;
  /** CR: the previous replica's VDIs the deltas chain onto (§6.1 `checkBaseVdis`). */
  findReplicaBases(
    req: ReplicaRequest & { bases: { chainVdiUuid: string; baseVdiUuid: string }[] },
  ): Promise<ReplicaBases>;
  /** CR: one target VDI per disk, a clone of its base or a new one; marked until complete. */
  createReplicaVdis(
    req: ReplicaRequest & {
      runId: string;
      sourcePoolId: string;
      disks: { key: string; snapshotVdiUuid: string; baseTargetVdiUuid?: string; suspend?: boolean }[];
    },
  ): Promise<Record<string, string>>;
  /** DR: marks the imported VM as this run's replica (name, tags, HA, blocked start, keys). */
  finishDrReplica(
    req: ReplicaRequest & {
      /** the VM the XVA import made */
      importedVmUuid: string;
      runId: string;
      sourcePoolId: string;
      jobName: string;
      datetime: string;
    },
  ): Promise<ReplicaResult>;
  /** CR: creates the replica VM on the imported VDIs, completes it and snapshots it. */
  createCrReplica(
    req: ReplicaRequest & {
      runId: string;
      sourcePoolId: string;
      snapshotUuid: string;
      /** source snapshot VDI uuid → target VDI uuid (the suspend VDI included) */
      vdis: Record<string, string>;
      jobName: string;
      datetime: string;
    },
  ): Promise<ReplicaResult>;
  /** Deletes the replicas of this VM and schedule on the SR beyond the newest `keep`. */
  applyReplicaRetention(req: ReplicaRequest & { keep: number }): Promise<{ kept: number; removed: string[] }>;
  /**
   * Health check of a replica: a clone of it (of its suspended snapshot for a RAM replica), marked
   * as a health-check VM with the check's id (so removeRestored deletes it), without VIFs, started.
   */
  startReplicaCheck(req: {
    poolId: string;
    replicaVmUuid: string;
    checkId: string;
  }): Promise<{ vmUuid: string; tags: string[] }>;
};

/** The lease on a target pool's import slots (workflows/writers/import-slots.ts). */
export type ImportSlotActivities = {
  /**
   * Runs on the target pool's `import` queue, so it starts only when one of its slots is free, and
   * holds that slot until cancelled. Once started it signals its workflow ({@link IMPORT_SLOT_SIGNAL}
   * with `lease`), which then lets the transfer into that pool begin.
   */
  holdImportSlot(req: { poolId: string; lease: string }): Promise<void>;
};
