// One VM of one run (DESIGN §3): preflight → snapshot → export and transfer → metadata → snapshot
// cleanup → retention. Cleanup runs in a non-cancellable scope, so neither a failure nor a
// cancellation leaves a snapshot or a lock behind.
import {
  CancellationScope,
  defineQuery,
  isCancellation,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  MetadataDisk,
  Preflight,
  SnapshotInfo,
  TargetOutcome,
  TransferResult,
} from '../activities/contract';
import { chooseBaseSnapshot, type DiskPlan, planDisks } from '../core/delta-base';
import { parseDuration } from '../core/duration';
import type { BackupJobInput } from '../core/job-input';
import { FAILURE_TYPES, failedWith } from '../core/outcome-failure';
import { formatBackupId } from '../core/restore-backup-id';
import { type VmReport, vmOutcome } from '../core/run-report';
import type { SelectedVm } from '../core/vm-selection';
import { plural } from '../core/words';
import { healthCheckStep } from './health-check';
import { cleanupActivities, lockKeeperActivities, mainActivities, poolActivities } from './options';
import { errorInfo, StepRecorder } from './report';

export interface BackupVmInput extends BackupJobInput {
  vm: SelectedVm;
  runId: string; // the parent run's workflow id
}

const CHAIN_TOO_LONG = 'SR_BACKEND_FAILURE_109';

export const vmReportQuery = defineQuery<VmReport>('report');

export async function backupVm(input: BackupVmInput): Promise<VmReport> {
  const { vm } = input;
  const report: VmReport = {
    vmUuid: vm.uuid,
    vmName: vm.name,
    poolId: vm.poolId,
    workflowId: workflowInfo().workflowId,
    status: 'running',
    start: Date.now(),
    steps: [],
  };
  setHandler(vmReportQuery, () => report);
  const steps = new StepRecorder(report.steps);
  try {
    const backup = new VmBackup(input, steps, report);
    await backup.run();
    report.status = backup.skipped ? 'skipped' : vmOutcome(report.steps);
    if (backup.skipped) report.detail = backup.skipped;
  } catch (err) {
    report.status = 'failure';
    report.error = errorInfo(err);
    if (isCancellation(err)) throw err;
  } finally {
    report.end = Date.now();
  }
  // Failed in Temporal when the backup failed, with the report; Completed when done or skipped.
  if (report.status === 'failure') throw failedWith(FAILURE_TYPES.vm, vmFailureMessage(report), report);
  return report;
}

function vmFailureMessage(report: VmReport): string {
  const why =
    report.error?.message ??
    report.steps
      .filter((s) => s.status === 'failure')
      .map((s) => `${s.name}${s.target ? ` ${s.target}` : ''}: ${s.error?.message ?? 'failed'}`)
      .join('; ');
  return `backup of VM ${report.vmName} failed: ${why}`;
}

/** The steps of one VM backup, sharing the run's state. */
class VmBackup {
  private readonly ops;
  private readonly main = mainActivities();
  private readonly ref;
  private readonly exportsToRemotes: boolean;

  constructor(
    private readonly input: BackupVmInput,
    private readonly steps: StepRecorder,
    private readonly report: VmReport,
  ) {
    this.ops = poolActivities(input.vm.poolId, 'ops');
    this.ref = { poolId: input.vm.poolId, vmUuid: input.vm.uuid };
    this.exportsToRemotes = input.job.mode === 'full' || input.job.mode === 'delta';
  }

  /** Set when the VM was skipped, with the reason. */
  skipped?: string;
  /** The newest backup of this VM on the targets: the new one must be named after it. */
  private newestOnRemotes?: string;

  /** Set when the lock keeper found a VM lock taken over: nothing more is written under it. */
  private lockLost?: string;

  async run(): Promise<void> {
    const pre = await this.preflight();
    const keeper = new CancellationScope();
    let keeping: Promise<void> | undefined;
    try {
      const remoteIds = this.exportsToRemotes ? await this.prepareRemotes() : [];
      if (this.exportsToRemotes && remoteIds.length === 0) throw new Error('no target remote is writable');
      if (remoteIds.length > 0) keeping = keeper.run(() => this.holdLocks(remoteIds));
      await this.snapshotAndExport(pre, remoteIds);
    } finally {
      keeper.cancel();
      await keeping;
      await CancellationScope.nonCancellable(() => this.cleanup());
    }
  }

  /** Keeps the VM locks alive while this run works under them (however long it waits for slots). */
  private async holdLocks(remoteIds: string[]): Promise<void> {
    try {
      await lockKeeperActivities().holdVmLocks({
        remoteIds,
        vmUuid: this.input.vm.uuid,
        owner: this.input.runId,
      });
    } catch (err) {
      if (!isCancellation(err)) this.lockLost = errorInfo(err).message;
    }
  }

  private async preflight(): Promise<Preflight> {
    const pre = await this.steps.run(
      'preflight',
      () => this.ops.preflightVm({ ...this.ref, snapshotMode: this.input.job.snapshotMode }),
      {
        done: (p) => ({
          detail: `${p.powerState}, ${plural(p.disks.filter((d) => !d.ignored).length, 'disk')}, snapshot ${p.snapshotMode} (${p.snapshotModeWhy})`,
        }),
      },
    );
    this.report.vmName = pre.vmName;
    return pre;
  }

  /**
   * Takes the snapshot. While XAPI refuses because a VDI chain is too long (SR_BACKEND_FAILURE_109,
   * the chain has not coalesced yet), waits on a durable timer and tries again, within the job's
   * bound; then the VM is skipped with the reason.
   */
  private async snapshotWhenChainAllows(
    take: () => Promise<SnapshotInfo>,
  ): Promise<SnapshotInfo | undefined> {
    const { chainWait } = this.input.job;
    const interval = parseDuration(chainWait.interval) ?? 300_000;
    const deadline = Date.now() + (parseDuration(chainWait.maximum) ?? 3_600_000);
    for (;;) {
      try {
        return await this.steps.run('snapshot', take, {
          done: (s) => ({ detail: `${s.kind} ${s.uuid}${s.note ? ` (${s.note})` : ''}` }),
        });
      } catch (err) {
        if (errorInfo(err).code !== CHAIN_TOO_LONG) throw err;
        const step = this.report.steps[this.report.steps.length - 1];
        step.status = 'skipped';
        if (Date.now() + interval > deadline) {
          step.detail = `VDI chain too long, still not coalesced after ${chainWait.maximum}: VM skipped`;
          this.skipped = step.detail;
          return undefined;
        }
        step.detail = `VDI chain too long; looking again in ${chainWait.interval}`;
        await sleep(interval);
      }
    }
  }

  private async prepareRemotes(): Promise<string[]> {
    const outcomes = await this.steps.run(
      'remotes',
      () =>
        this.main.prepareRemotes({
          remoteIds: this.input.job.remotes,
          vmUuid: this.input.vm.uuid,
          owner: this.input.runId,
        }),
      { done: (o) => ({ detail: o.map((t) => `${t.remoteId}: ${t.ok ? 'ready' : t.error}`).join('; ') }) },
    );
    this.newestOnRemotes = outcomes
      .map((o) => o.newestBackup)
      .filter((ts): ts is string => ts !== undefined)
      .sort()
      .at(-1);
    for (const t of outcomes.filter((o) => !o.ok)) {
      this.steps.record({
        name: 'transfer',
        target: t.remoteId,
        status: 'failure',
        error: { code: 'REMOTE_UNAVAILABLE', message: t.error ?? 'unavailable' },
      });
    }
    return outcomes.filter((o) => o.ok).map((o) => o.remoteId);
  }

  private async snapshotAndExport(pre: Preflight, remoteIds: string[]): Promise<void> {
    const { job } = this.input;
    const offline = pre.snapshotMode === 'offline' && pre.powerState === 'Running';
    if (offline) {
      await this.steps.run('shutdown', () => this.ops.shutdownVm(this.ref), {
        done: () => ({ detail: 'for an offline snapshot' }),
      });
    }
    let snapshot: SnapshotInfo | undefined;
    try {
      snapshot = await this.snapshotWhenChainAllows(() =>
        // Not cancellable: a cancelled activity whose start event is not yet in history resolves at
        // once in the workflow while the XAPI snapshot still lands later, after cleanup, leaked.
        // Waiting for it lets the cleanup below delete it; the export after it sees the cancel.
        CancellationScope.nonCancellable(() =>
          poolActivities(this.input.vm.poolId, 'snapshot').takeSnapshot({
            ...this.ref,
            jobId: job.id,
            scheduleId: this.input.scheduleId,
            runId: this.input.runId,
            mode: offline ? 'normal' : pre.snapshotMode,
            ignoreVdiUuids: pre.disks.filter((d) => d.ignored).map((d) => d.vdiUuid),
            after: this.newestOnRemotes,
          }),
        ),
      );
    } finally {
      // The VM is back up at once, whatever happens next.
      if (offline)
        await CancellationScope.nonCancellable(() =>
          this.steps.run('start', () => this.ops.startVm(this.ref)),
        );
    }
    if (!snapshot) return;
    for (const d of pre.disks.filter((d) => d.ignored)) {
      this.steps.record({ name: 'export', target: d.name, status: 'skipped', detail: 'disk marked [NOBAK]' });
    }
    if (job.mode === 'full') await this.fullBackup(snapshot, remoteIds);
    else if (job.mode === 'delta') await this.deltaBackup(snapshot, remoteIds);
  }

  private async fullBackup(snapshot: SnapshotInfo, remoteIds: string[]): Promise<void> {
    const { job } = this.input;
    const result = await this.steps.run(
      'export',
      () =>
        poolActivities(this.input.vm.poolId, 'vm-export').exportVm({
          ...this.ref,
          jobId: job.id,
          datetime: snapshot.datetime,
          snapshotUuid: snapshot.uuid,
          compression: job.compression,
          remoteIds,
        }),
      { target: 'xva', done: (r) => ({ bytes: r.bytes, detail: `${job.compression} XVA` }) },
    );
    const ok = this.recordTargets(result.targets, result.bytes);
    if (ok.length === 0) throw new Error('the XVA could not be written to any remote');
    await this.writeMetadataAndRetain(snapshot, ok, {
      mode: 'full',
      disks: [],
      xvaPath: result.path,
      size: result.bytes,
      deltaChainLength: 0,
    });
  }

  private async deltaBackup(snapshot: SnapshotInfo, remoteIds: string[]): Promise<void> {
    const { job } = this.input;
    const chainVdis = Object.keys(snapshot.vdis);
    const jobSnapshots = await this.ops.listJobSnapshots({ ...this.ref, jobId: job.id });
    const choice = chooseBaseSnapshot(jobSnapshots, job.fullInterval, snapshot.uuid);
    const missing = choice.base
      ? await this.main.remotesMissingBase({
          remoteIds,
          vmUuid: this.input.vm.uuid,
          jobId: job.id,
          disks: chainVdis
            .filter((v) => choice.base?.vdis[v])
            .map((v) => ({
              chainVdiUuid: v,
              baseVdiUuid: choice.base!.vdis[v],
              baseDatetime: choice.base!.datetime,
            })),
        })
      : {};
    const plans: DiskPlan[] = planDisks(chainVdis, choice, (v) => missing[v] ?? []);
    const disk = poolActivities(this.input.vm.poolId, 'disk-export');
    const exportOne = (plan: DiskPlan, snapshotVdiUuid: string) =>
      this.steps.run(
        'export',
        () =>
          disk.exportDisk({
            ...this.ref,
            jobId: job.id,
            runId: this.input.runId,
            datetime: snapshot.datetime,
            snapshotVdiUuid,
            chainVdiUuid: plan.liveVdiUuid,
            baseVdiUuid: plan.baseVdiUuid,
            baseDatetime: plan.baseDatetime,
            remoteIds,
          }),
        { target: plan.liveVdiUuid, done: (r: TransferResult) => ({ bytes: r.bytes, detail: plan.reason }) },
      );
    const exports = plans.map(async (p): Promise<[string, TransferResult]> => {
      const snapshotVdiUuid = snapshot.vdis[p.liveVdiUuid];
      return [snapshotVdiUuid, await exportOne(p, snapshotVdiUuid)];
    });
    if (snapshot.suspendVdiUuid) {
      const suspend = snapshot.suspendVdiUuid;
      exports.push(
        exportOne({ liveVdiUuid: suspend, reason: 'full: memory of the checkpoint' }, suspend).then(
          (r): [string, TransferResult] => [suspend, r],
        ),
      );
    }
    const results = await Promise.all(exports);
    // A remote holds this backup only if every disk reached it.
    const ok = remoteIds.filter((id) =>
      results.every(([, r]) => r.targets.some((t) => t.remoteId === id && t.ok)),
    );
    const bytes = results.reduce((n, [, r]) => n + r.bytes, 0);
    this.recordTargets(
      remoteIds.map((id) => ({
        remoteId: id,
        ok: ok.includes(id),
        error: results.flatMap(([, r]) => r.targets).find((t) => t.remoteId === id && !t.ok)?.error,
      })),
      bytes,
    );
    if (ok.length === 0) throw new Error('the disks could not be written to any remote');
    const disks: MetadataDisk[] = results.map(([snapshotVdiUuid, r]) => ({
      snapshotVdiUuid,
      path: r.path,
      differencing: r.differencing,
    }));
    await this.writeMetadataAndRetain(snapshot, ok, {
      mode: 'delta',
      disks,
      size: bytes,
      deltaChainLength: plans.every((p) => p.baseVdiUuid) ? choice.deltaChainLength : 0,
    });
  }

  private recordTargets(targets: TargetOutcome[], bytes: number): string[] {
    for (const t of targets) {
      this.steps.record({
        name: 'transfer',
        target: t.remoteId,
        status: t.ok ? 'success' : 'failure',
        bytes: t.ok ? bytes : undefined,
        error: t.ok ? undefined : { code: 'REMOTE_WRITE_FAILED', message: t.error ?? 'write failed' },
      });
    }
    return targets.filter((t) => t.ok).map((t) => t.remoteId);
  }

  private async writeMetadataAndRetain(
    snapshot: SnapshotInfo,
    remoteIds: string[],
    b: {
      mode: 'full' | 'delta';
      disks: MetadataDisk[];
      xvaPath?: string;
      size: number;
      deltaChainLength: number;
    },
  ): Promise<void> {
    const { job } = this.input;
    if (this.lockLost) throw new Error(`VM lock lost, backup not completed: ${this.lockLost}`);
    const written = await this.steps.run('metadata', () =>
      this.ops.writeMetadata({
        ...this.ref,
        jobId: job.id,
        scheduleId: this.input.scheduleId,
        mode: b.mode,
        datetime: snapshot.datetime,
        snapshotUuid: snapshot.uuid,
        remoteIds,
        disks: b.disks,
        xvaPath: b.xvaPath,
        size: b.size,
        timezone: this.input.timezone,
      }),
    );
    await this.ops.markSnapshotExported({
      poolId: this.input.vm.poolId,
      snapshotUuid: snapshot.uuid,
      deltaChainLength: b.deltaChainLength,
    });
    // Retention only where this backup landed: a failed run never costs an older good backup.
    for (const t of written.filter((w) => w.ok)) {
      await this.steps.run(
        'retention',
        () =>
          this.main.applyRemoteRetention({
            remoteId: t.remoteId,
            vmUuid: this.input.vm.uuid,
            jobId: job.id,
            scheduleId: this.input.scheduleId,
            mode: b.mode,
            retention: this.input.retention,
            timezone: this.input.timezone,
          }),
        {
          target: t.remoteId,
          done: (r) => ({ detail: `kept ${r.kept}, removed ${r.removed.length}, merged ${r.merged.length}` }),
        },
      );
    }
    // Health check (workflows/health-check.ts): restore this backup, boot it, wait for its agent, delete.
    const checked = written.find((w) => w.ok)?.remoteId;
    await healthCheckStep(this.steps, this.input.healthCheck, {
      backupId:
        checked &&
        formatBackupId({ remoteId: checked, vmUuid: this.input.vm.uuid, basename: snapshot.datetime }),
      poolId: this.input.vm.poolId,
    });
  }

  private async cleanup(): Promise<void> {
    const { job } = this.input;
    try {
      await this.steps.run(
        'cleanup',
        () =>
          cleanupActivities(this.input.vm.poolId).cleanupSnapshots({
            ...this.ref,
            jobId: job.id,
            scheduleId: this.input.scheduleId,
            mode: job.mode,
            keep: this.input.retention.snapshot,
          }),
        {
          done: (v) => ({
            detail: `kept ${v.filter((s) => s.keep).length}, deleted ${v.filter((s) => !s.keep).length} snapshots`,
          }),
        },
      );
    } finally {
      // Releasing is idempotent and only frees this run's locks, so every target is released.
      if (this.exportsToRemotes) {
        await this.main.releaseRemotes({
          remoteIds: job.remotes,
          vmUuid: this.input.vm.uuid,
          owner: this.input.runId,
        });
      }
    }
  }
}
