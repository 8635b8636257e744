// One VM of one run (DESIGN §3): preflight → snapshot → export and transfer → metadata → snapshot
// cleanup → retention. Cleanup runs in a non-cancellable scope, so neither a failure nor a
// cancellation leaves a snapshot or a lock behind.
import {
  CancellationScope,
  defineQuery,
  isCancellation,
  patched,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Preflight, SnapshotInfo, TransferResult } from '../activities/contract';
import { chooseBaseSnapshot, type DiskPlan, planDisks } from '../core/delta-base';
import { parseDuration } from '../core/duration';
import type { BackupJobInput } from '../core/job-input';
import { FAILURE_TYPES, failedWith } from '../core/outcome-failure';
import { nowIso, type VmReport, vmOutcome } from '../core/run-report';
import type { SelectedVm } from '../core/vm-selection';
import { plural } from '../core/words';
import { healthCheckStep } from './health-check';
import { cleanupActivities, localActivities, lockKeeperActivities, poolActivities } from './options';
import { errorInfo, StepRecorder } from './report';
import { ImportSlots } from './writers/import-slots';
import { RemoteWriter } from './writers/remote-writer';
import { SrWriter } from './writers/sr-writer';
import { type Exported, type Feed, mergeFeeds, type Writer } from './writers/writer';

export interface BackupVmInput extends BackupJobInput {
  vm: SelectedVm;
  runId: string; // the parent run's workflow id
}

const CHAIN_TOO_LONG = 'SR_BACKEND_FAILURE_109';

/**
 * The lean run (issue 14): the cheap bookkeeping (preflight, the remotes' lock, probe and unlock,
 * the missing-base check, the metadata JSON) as local activities, the job's snapshots listed by the
 * snapshot activity, the snapshot marked exported while retention runs. Runs started before it
 * replay the activities they recorded.
 */
export const LEAN_RUN = 'xcpb-vm-lean-run';

/** The job's targets as writers: the remotes (one writer for all), then one per SR. */
function createWriters(
  input: BackupVmInput,
  steps: StepRecorder,
  vmName: () => string,
  lockLost: () => string | undefined,
  lean: boolean,
): Writer[] {
  if (input.job.mode === 'snapshot') return [];
  const slots = input.job.srs.length > 0 ? new ImportSlots(input.job.srs.map((t) => t.pool)) : undefined;
  return [
    ...(input.job.remotes.length > 0 ? [new RemoteWriter(input, steps, vmName, lockLost, lean)] : []),
    ...input.job.srs.map((sr) => new SrWriter(input, steps, sr, slots!)),
  ];
}

export const vmReportQuery = defineQuery<VmReport>('report');

export async function backupVm(input: BackupVmInput): Promise<VmReport> {
  const { vm } = input;
  const report: VmReport = {
    vmUuid: vm.uuid,
    vmName: vm.name,
    poolId: vm.poolId,
    workflowId: workflowInfo().workflowId,
    status: 'running',
    start: nowIso(),
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
    report.end = nowIso();
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
  private readonly ref;
  /** every target of the job (workflows/writers): remotes and SRs */
  private readonly writers: Writer[];
  /** the writers still in the run: a failing one is dropped, the others go on */
  private live: Writer[] = [];
  /** fewer round trips (LEAN_RUN); false when replaying a run started before it */
  private readonly lean: boolean;

  constructor(
    private readonly input: BackupVmInput,
    private readonly steps: StepRecorder,
    private readonly report: VmReport,
  ) {
    this.ops = poolActivities(input.vm.poolId, 'ops');
    this.ref = { poolId: input.vm.poolId, vmUuid: input.vm.uuid };
    this.lean = patched(LEAN_RUN);
    this.writers = createWriters(
      input,
      steps,
      () => this.vmName,
      () => this.lockLost,
      this.lean,
    );
  }

  /** Set when the VM was skipped, with the reason. */
  skipped?: string;
  /** disk names by live VDI uuid, from the preflight (the UI names disks, not uuids) */
  private diskNames: Record<string, string> = {};

  private get vmName(): string {
    return this.report.vmName || this.input.vm.name;
  }

  /** The pool's ops activities, summarised for the Web UI. */
  private opsAs(summary: string) {
    return poolActivities(this.input.vm.poolId, 'ops', summary);
  }

  /** Cheap reads of the pool: local activities in a lean run (workflows/options.ts). */
  private readsAs(summary: string) {
    return this.lean ? localActivities(summary) : this.opsAs(summary);
  }

  /** Set when the lock keeper found a VM lock taken over: nothing more is written under it. */
  private lockLost?: string;

  /** What the export feeds, for the Web UI's summaries ("→ nas, pool-b/sr1"). */
  private get targetsLabel(): string {
    return this.live.map((w) => w.label).join(', ');
  }

  async run(): Promise<void> {
    const pre = await this.preflight();
    const keeper = new CancellationScope();
    let keeping: Promise<void> | undefined;
    try {
      await this.prepareWriters();
      // The VM locks taken on the remotes are kept alive while this run works under them.
      const remoteIds = this.live.flatMap((w) => w.lockedRemotes?.() ?? []);
      if (remoteIds.length > 0) keeping = keeper.run(() => this.holdLocks(remoteIds));
      await this.snapshotAndExport(pre);
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

  /** Prepares every writer; those that fail are dropped (their step says why). */
  private async prepareWriters(): Promise<void> {
    const prepared = await Promise.allSettled(this.writers.map((w) => w.prepare()));
    for (const r of prepared) if (r.status === 'rejected' && isCancellation(r.reason)) throw r.reason;
    this.live = this.writers.filter((_, i) => prepared[i].status === 'fulfilled');
    if (this.writers.length > 0 && this.live.length === 0) {
      // One target: its own reason (e.g. "no target remote is writable"); several: all failed.
      const only =
        prepared.length === 1 && prepared[0].status === 'rejected' ? prepared[0].reason : undefined;
      throw only ?? new Error('no target is writable');
    }
  }

  /** Runs `step` on every live writer; a writer whose step fails is dropped. */
  private async eachWriter(step: (w: Writer) => Promise<unknown>): Promise<void> {
    const results = await Promise.allSettled(this.live.map(step));
    for (const r of results) if (r.status === 'rejected' && isCancellation(r.reason)) throw r.reason;
    this.live = this.live.filter(
      (_, i) =>
        results[i].status === 'fulfilled' && (results[i] as PromiseFulfilledResult<unknown>).value !== false,
    );
  }

  private async preflight(): Promise<Preflight> {
    const pre = await this.steps.run(
      'preflight',
      () =>
        this.readsAs(`preflight of ${this.vmName}`).preflightVm({
          ...this.ref,
          snapshotMode: this.input.job.snapshotMode,
        }),
      {
        done: (p) => ({
          detail: `${p.powerState}, ${plural(p.disks.filter((d) => !d.ignored).length, 'disk')}, snapshot ${p.snapshotMode} (${p.snapshotModeWhy})`,
        }),
      },
    );
    this.report.vmName = pre.vmName;
    this.diskNames = Object.fromEntries(pre.disks.map((d) => [d.vdiUuid, d.name]));
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

  private async snapshotAndExport(pre: Preflight): Promise<void> {
    const { job } = this.input;
    const offline = pre.snapshotMode === 'offline' && pre.powerState === 'Running';
    if (offline) {
      await this.steps.run('shutdown', () => this.opsAs(`shut down ${this.vmName}`).shutdownVm(this.ref), {
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
          poolActivities(this.input.vm.poolId, 'snapshot', `snapshot of ${this.vmName}`).takeSnapshot({
            ...this.ref,
            jobId: job.id,
            scheduleId: this.input.scheduleId,
            runId: this.input.runId,
            mode: offline ? 'normal' : pre.snapshotMode,
            ignoreVdiUuids: pre.disks.filter((d) => d.ignored).map((d) => d.vdiUuid),
            after: this.live
              .map((w) => w.newest())
              .filter((ts): ts is string => ts !== undefined)
              .sort()
              .at(-1),
          }),
        ),
      );
    } finally {
      // The VM is back up at once, whatever happens next.
      if (offline)
        await CancellationScope.nonCancellable(() =>
          this.steps.run('start', () => this.opsAs(`start ${this.vmName}`).startVm(this.ref)),
        );
    }
    if (!snapshot) return;
    for (const d of pre.disks.filter((d) => d.ignored)) {
      this.steps.record({ name: 'export', target: d.name, status: 'skipped', detail: 'disk marked [NOBAK]' });
    }
    if (job.mode === 'full') await this.fullBackup(snapshot);
    else if (job.mode === 'delta') await this.deltaBackup(snapshot);
  }

  /** One XVA export feeding every writer: files on remotes, imports into SRs (DR). */
  private async fullBackup(snapshot: SnapshotInfo): Promise<void> {
    const { job } = this.input;
    const exported = { snapshot, mode: 'full' as const, plans: [], deltaChainLength: 0 };
    const feeds = await this.feeds(exported);
    const feed = mergeFeeds(feeds.map((f) => f()));
    const result = await this.steps.run(
      'export',
      () =>
        poolActivities(
          this.input.vm.poolId,
          'vm-export',
          `export ${this.vmName} as XVA → ${this.targetsLabel}`,
        ).exportVm({
          ...this.ref,
          jobId: job.id,
          datetime: snapshot.datetime,
          snapshotUuid: snapshot.uuid,
          compression: job.compression,
          ...feed,
        }),
      { target: 'xva', done: (r) => ({ bytes: r.bytes, detail: `${job.compression} XVA` }) },
    );
    await this.commitAndRetain({ ...exported, results: [{ result }] });
  }

  /** Each disk exported once (delta where every writer holds its base), feeding every writer. */
  private async deltaBackup(snapshot: SnapshotInfo): Promise<void> {
    const { job } = this.input;
    const chainVdis = Object.keys(snapshot.vdis);
    // The snapshot activity lists the job's snapshots as it finishes (one round trip less); a run
    // recorded before it did lists them here.
    const jobSnapshots =
      snapshot.jobSnapshots ?? (await this.ops.listJobSnapshots({ ...this.ref, jobId: job.id }));
    const choice = chooseBaseSnapshot(jobSnapshots, job.fullInterval, snapshot.uuid);
    const missing: Record<string, string[]> = {};
    const base = choice.base;
    if (base) {
      await this.eachWriter(async (w) => {
        for (const [v, targets] of Object.entries(await w.missingBases(base, chainVdis)))
          missing[v] = [...(missing[v] ?? []), ...targets];
      });
    }
    const plans: DiskPlan[] = planDisks(chainVdis, choice, (v) => missing[v] ?? []);
    const exported = {
      snapshot,
      mode: 'delta' as const,
      plans,
      deltaChainLength: plans.every((p) => p.baseVdiUuid) ? choice.deltaChainLength : 0,
    };
    const feeds = await this.feeds(exported);
    const feedOf = (disk: string) => mergeFeeds(feeds.map((f) => f(disk)));
    const exportOne = (plan: DiskPlan, snapshotVdiUuid: string) =>
      this.steps.run(
        'export',
        () =>
          poolActivities(
            this.input.vm.poolId,
            'disk-export',
            `export disk ${this.diskNames[plan.liveVdiUuid] ?? 'memory'} of ${this.vmName} → ${this.targetsLabel}`,
          ).exportDisk({
            ...this.ref,
            jobId: job.id,
            runId: this.input.runId,
            datetime: snapshot.datetime,
            snapshotVdiUuid,
            chainVdiUuid: plan.liveVdiUuid,
            baseVdiUuid: plan.baseVdiUuid,
            baseDatetime: plan.baseDatetime,
            ...feedOf(plan.liveVdiUuid),
          }),
        {
          // People know their disks by name; the uuid stays in the detail for scripts.
          target: this.diskNames[plan.liveVdiUuid] ?? plan.liveVdiUuid,
          done: (r: TransferResult) => ({
            bytes: r.bytes,
            detail: `${plan.reason} (VDI ${plan.liveVdiUuid})`,
          }),
        },
      );
    const exports = plans.map(async (p) => {
      const snapshotVdiUuid = snapshot.vdis[p.liveVdiUuid];
      return { snapshotVdiUuid, result: await exportOne(p, snapshotVdiUuid) };
    });
    if (snapshot.suspendVdiUuid) {
      const suspend = snapshot.suspendVdiUuid;
      exports.push(
        exportOne({ liveVdiUuid: suspend, reason: 'full: memory of the checkpoint' }, suspend).then(
          (result) => ({
            snapshotVdiUuid: suspend,
            result,
          }),
        ),
      );
    }
    await this.commitAndRetain({ ...exported, results: await Promise.all(exports) });
  }

  /** What each live writer needs fed; a writer that cannot say is dropped. */
  private async feeds(exported: Omit<Exported, 'results'>): Promise<((disk?: string) => Feed)[]> {
    const feeds = new Map<Writer, (disk?: string) => Feed>();
    await this.eachWriter(async (w) => {
      feeds.set(w, await w.feed(exported));
    });
    if (this.live.length === 0) throw new Error('no target is left to write to');
    return this.live.map((w) => feeds.get(w)!);
  }

  /**
   * Each writer commits what it received, then retention runs where the backup landed; the health
   * check follows, on its own step. The VM fails only when no writer holds the backup.
   */
  private async commitAndRetain(exported: Exported): Promise<void> {
    await this.eachWriter((w) => w.commit(exported));
    if (this.live.length === 0) throw new Error('the backup reached no target');
    const marked = this.ops.markSnapshotExported({
      poolId: this.input.vm.poolId,
      snapshotUuid: exported.snapshot.uuid,
      deltaChainLength: exported.deltaChainLength,
    });
    // Retention needs the backup committed, not the snapshot marked: both at once in a lean run.
    // (Both are waited for before either's failure goes on: nothing may run under a released lock.)
    if (this.lean) {
      const retained = this.eachWriter((w) => w.retain());
      await Promise.allSettled([marked, retained]);
      await marked;
      await retained;
    } else {
      await marked;
      await this.eachWriter((w) => w.retain());
    }
    await this.healthCheck();
  }

  /** Health check (workflows/health-check.ts): restore the new backup, boot it, wait for its agent, delete. */
  private async healthCheck(): Promise<void> {
    const subject = this.live.map((w) => w.healthCheckSubject()).find((s) => s !== undefined);
    const check = this.input.healthCheck;
    if (!subject && check) {
      // No backup to restore (SR targets only): the check runs on a clone of the new replica.
      for (const w of this.live) {
        try {
          if (await w.healthCheck?.(check)) return;
        } catch (err) {
          if (isCancellation(err)) throw err; // else recorded as a failed step
        }
      }
      return;
    }
    await healthCheckStep(this.steps, this.input.healthCheck, {
      backupId: subject?.backupId,
      poolId: this.input.vm.poolId,
    });
  }

  private async cleanup(): Promise<void> {
    const { job } = this.input;
    // Every writer cleans up, even the dropped ones (locks, half-done imports), each on its own,
    // whatever the snapshot cleanup does.
    const writersDone = Promise.allSettled(this.writers.map((w) => w.cleanup()));
    try {
      await this.steps.run(
        'cleanup',
        () =>
          cleanupActivities(this.input.vm.poolId, `delete old snapshots of ${this.vmName}`).cleanupSnapshots({
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
      await writersDone;
    }
    const failed = (await writersDone).find((d) => d.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}
