// The SR writer: a replica of the VM on an SR of any configured pool (xo-backups.md §6.1).
// full → disaster recovery: the XVA export streams into `PUT /import?sr_id=`, the new VM is then
// marked a replica. delta → continuous replication: each disk's VHD (delta when the previous
// replica holds its base) goes onto a clone of the previous replica's VDI, then the replica VM is
// created on them and snapshotted. Either way, retention keeps the newest N replicas; what an
// interrupted transfer left is destroyed before the next one.
import { CancellationScope, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { ImportTarget } from '../../activities/contract';
import type { SrTarget, SrWriterActivities } from '../../activities/sr-writer-contract';
import type { ScheduleConfig } from '../../core/config/schema';
import { type ReplicaOwner, replicaImportTaskName } from '../../core/replica';
import { healthCheckApplies, healthCheckTimeoutMs } from '../../core/restore-health-timeout';
import { poolQueue } from '../../core/task-queues';
import type { BackupVmInput } from '../backup-vm';
import type { StepRecorder } from '../report';
import { poolRestoreActivities } from '../restore-vm';
import type { ImportSlots } from './import-slots';
import type { Exported, Feed, Writer } from './writer';

const retry = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 };

/**
 * The target pool's replica work. On its `ops` queue: the `import` queue's slots are what the run's
 * slot lease holds (./import-slots.ts); runs recorded before the lease ran it on `import`.
 */
function targetActivities(poolId: string, queue: 'ops' | 'import') {
  return proxyActivities<SrWriterActivities>({
    taskQueue: poolQueue(poolId, queue),
    startToCloseTimeout: '1h',
    heartbeatTimeout: '60s',
    retry,
  });
}

export class SrWriter implements Writer {
  readonly label: string;
  private readonly act;
  private readonly owner: ReplicaOwner;
  private readonly kind: 'dr' | 'cr';
  private target?: SrTarget;
  /** CR: chain VDI → the target VDI its delta goes onto */
  private bases: Record<string, string> = {};
  /** CR: snapshot VDI (or suspend VDI) → the target VDI it is imported into */
  private vdis: Record<string, string> = {};
  private committed = false;
  /** the replica this run made */
  private replicaUuid?: string;
  /** the run's import slot leases; undefined when replaying a run from before them */
  private readonly slots?: ImportSlots;
  private holdsSlot = false;

  constructor(
    private readonly input: BackupVmInput,
    private readonly steps: StepRecorder,
    private readonly sr: { pool: string; sr: string },
    slots: ImportSlots,
  ) {
    this.label = `${sr.pool}/${sr.sr}`;
    if (patched('import-slot-lease')) this.slots = slots;
    this.act = targetActivities(sr.pool, this.slots ? 'ops' : 'import');
    this.owner = { vmUuid: input.vm.uuid, jobId: input.job.id, scheduleId: input.scheduleId };
    this.kind = input.job.mode === 'full' ? 'dr' : 'cr';
  }

  private get id(): string {
    return `sr:${this.label}`;
  }

  async prepare(): Promise<void> {
    this.target = await this.steps.run(
      'replica-target',
      () => this.act.prepareSrTarget({ ...this.owner, poolId: this.sr.pool, sr: this.sr.sr }),
      {
        target: this.label,
        done: (t) => ({
          detail: `SR ${t.srName} (${t.srUuid})${t.removed.length ? `; removed ${t.removed.length} leftovers of an interrupted transfer` : ''}`,
        }),
      },
    );
  }

  newest(): string | undefined {
    return undefined;
  }

  async missingBases(
    base: { vdis: Readonly<Record<string, string>> },
    chainVdiUuids: string[],
  ): Promise<Record<string, string[]>> {
    const bases = chainVdiUuids
      .filter((v) => base.vdis[v])
      .map((v) => ({ chainVdiUuid: v, baseVdiUuid: base.vdis[v] }));
    const r = await this.act.findReplicaBases({
      ...this.owner,
      poolId: this.sr.pool,
      srUuid: this.srUuid,
      bases,
    });
    this.bases = r.found;
    return Object.fromEntries(
      Object.entries(r.missing).map(([v, why]) => [v, [`SR ${this.label} (${why})`]]),
    );
  }

  private get srUuid(): string {
    if (!this.target) throw new Error(`SR ${this.label} not prepared`);
    return this.target.srUuid;
  }

  /** The transfer into the target pool starts once the run holds one of its import slots. */
  private async takeSlot(): Promise<void> {
    if (!this.slots) return;
    this.holdsSlot = true;
    await this.slots.take();
  }

  private async releaseSlot(): Promise<void> {
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    await this.slots?.release();
  }

  async feed(e: Omit<Exported, 'results'>): Promise<(disk?: string) => Feed> {
    await this.takeSlot();
    if (this.kind === 'dr') {
      const t: ImportTarget = {
        id: this.id,
        poolId: this.sr.pool,
        srUuid: this.srUuid,
        owner: this.owner,
        taskName: replicaImportTaskName(this.owner, this.input.runId, `SR ${this.srUuid}`),
      };
      return () => ({ remoteIds: [], imports: [t] });
    }
    const disks = e.plans.map((p) => ({
      key: p.liveVdiUuid,
      snapshotVdiUuid: e.snapshot.vdis[p.liveVdiUuid],
      // A delta goes onto a clone of the previous replica's VDI; a full onto a new VDI.
      baseTargetVdiUuid: p.baseVdiUuid ? this.bases[p.liveVdiUuid] : undefined,
    }));
    const suspend = e.snapshot.suspendVdiUuid;
    if (suspend) disks.push({ key: suspend, snapshotVdiUuid: suspend, baseTargetVdiUuid: undefined });
    const byDisk = await this.steps.run(
      'replica-disks',
      () =>
        this.act.createReplicaVdis({
          ...this.owner,
          poolId: this.sr.pool,
          srUuid: this.srUuid,
          runId: this.input.runId,
          sourcePoolId: this.input.vm.poolId,
          disks: disks.map((d) => ({ ...d, suspend: d.key === suspend })),
        }),
      {
        target: this.label,
        done: () => ({
          detail: disks
            .map((d) => (d.baseTargetVdiUuid ? 'clone of the previous replica' : 'new VDI'))
            .join(', '),
        }),
      },
    );
    for (const d of disks) this.vdis[d.snapshotVdiUuid] = byDisk[d.key];
    return (disk) => ({
      remoteIds: [],
      imports: disk
        ? [
            {
              id: this.id,
              poolId: this.sr.pool,
              vdiUuid: byDisk[disk],
              taskName: replicaImportTaskName(this.owner, this.input.runId, `VDI ${byDisk[disk]}`),
            },
          ]
        : [],
    });
  }

  async commit(e: Exported): Promise<boolean> {
    try {
      return await this.commitReplica(e);
    } finally {
      await this.releaseSlot();
    }
  }

  private async commitReplica(e: Exported): Promise<boolean> {
    const outcomes = e.results.map((r) => r.result.imports?.find((i) => i.id === this.id));
    const failed = outcomes.find((o) => !o?.ok);
    const bytes = e.results.reduce((n, r) => n + r.result.bytes, 0);
    if (failed || outcomes.length === 0) {
      this.steps.record({
        name: 'transfer',
        target: this.label,
        status: 'failure',
        // XAPI's code when it gave one (SR_FULL…), so the report says why the import failed.
        error: { code: failed?.code ?? 'SR_IMPORT_FAILED', message: failed?.error ?? 'not imported' },
      });
      return false;
    }
    this.steps.record({ name: 'transfer', target: this.label, status: 'success', bytes });
    const common = {
      ...this.owner,
      poolId: this.sr.pool,
      srUuid: this.srUuid,
      sourcePoolId: this.input.vm.poolId,
      jobName: this.input.job.name ?? this.input.job.id,
      datetime: e.snapshot.datetime,
    };
    const replica = await this.steps.run(
      'replica',
      () =>
        this.kind === 'dr'
          ? this.act.finishDrReplica({
              ...common,
              runId: this.input.runId,
              importedVmUuid: outcomes[0]!.vmUuid!,
            })
          : this.act.createCrReplica({
              ...common,
              runId: this.input.runId,
              snapshotUuid: e.snapshot.uuid,
              vdis: this.vdis,
            }),
      {
        target: this.label,
        done: (r) => ({
          detail: [r.name, r.haCleared ? 'HA disabled on the replica' : '', ...r.warnings]
            .filter(Boolean)
            .join('; '),
        }),
      },
    );
    this.replicaUuid = replica.vmUuid;
    this.committed = replica.vmUuid !== undefined;
    return this.committed;
  }

  async retain(): Promise<void> {
    if (!this.committed) return;
    await this.steps.run(
      'retention',
      () =>
        this.act.applyReplicaRetention({
          ...this.owner,
          poolId: this.sr.pool,
          srUuid: this.srUuid,
          keep: this.input.copyRetention,
        }),
      {
        target: this.label,
        done: (r) => ({ detail: `kept ${r.kept} replicas, removed ${r.removed.length}` }),
      },
    );
  }

  healthCheckSubject(): undefined {
    return undefined;
  }

  /**
   * The health check on a clone of the new replica (XO clones a replica instead of restoring it):
   * started without network, its guest agent awaited, then deleted whatever happened.
   */
  async healthCheck(check: NonNullable<ScheduleConfig['healthCheck']>): Promise<boolean> {
    if (!this.replicaUuid) return false;
    const poolId = this.sr.pool;
    const checkId = `${workflowInfo().workflowId}/health-check:${this.label}`;
    const ops = poolRestoreActivities(poolId, 'ops');
    await this.steps.run(
      'healthCheck',
      async () => {
        try {
          const clone = await this.act.startReplicaCheck({
            poolId,
            replicaVmUuid: this.replicaUuid!,
            checkId,
          });
          if (!healthCheckApplies(clone.tags, check.tags))
            return {
              status: 'skipped' as const,
              detail: `VM has none of the tags ${check.tags?.join(', ')}`,
            };
          const timeoutMs = healthCheckTimeoutMs(0, check.timeout);
          const wait = poolRestoreActivities(poolId, 'ops', `${Math.ceil(timeoutMs / 1000) + 120}s`);
          const { waitedMs } = await wait.waitForGuestAgent({ poolId, vmUuid: clone.vmUuid, timeoutMs });
          return {
            status: 'success' as const,
            detail: `clone of the replica started, guest agent reported after ${Math.round(waitedMs / 1000)} s`,
          };
        } finally {
          await CancellationScope.nonCancellable(() => ops.removeRestored({ poolId, restoreId: checkId }));
        }
      },
      { target: this.label, done: (r) => r },
    );
    return true;
  }

  async cleanup(): Promise<void> {
    await this.releaseSlot();
    // A transfer that did not complete leaves nothing: its VDIs (and VM) go now, not next run.
    if (this.committed || !this.target) return;
    await this.act.cleanReplicaLeftovers({ ...this.owner, poolId: this.sr.pool });
  }
}
