// The remote writer: full XVA or delta VHDs into the repository on each of the job's remotes. One
// writer for all the job's remotes (they share the activities' batching); each remote is dropped
// on its own when it fails, and the writer fails only when none is left.
import type { MetadataDisk, TargetOutcome } from '../../activities/contract';
import { formatBackupId } from '../../core/restore-backup-id';
import type { BackupVmInput } from '../backup-vm';
import { localActivities, mainActivities, poolActivities } from '../options';
import type { StepRecorder } from '../report';
import type { Exported, Feed, Writer } from './writer';

export class RemoteWriter implements Writer {
  readonly label: string;
  /** remotes still in the run */
  private live: string[] = [];
  private newestOnRemotes?: string;
  /** remotes holding the new backup (its metadata written) */
  private written: string[] = [];
  private datetime?: string;

  constructor(
    private readonly input: BackupVmInput,
    private readonly steps: StepRecorder,
    /** the VM's name, for the Web UI's activity summaries */
    private readonly vmName: () => string,
    /** set when the run's lock keeper found a VM lock taken over */
    private readonly lockLost: () => string | undefined,
    /** runs started before the lean run (backup-vm.ts LEAN_RUN) scheduled these as activities */
    private readonly lean = false,
  ) {
    this.label = input.job.remotes.join(', ');
  }

  /** Lock, probe and unlock: local activities in a lean run (workflows/options.ts). */
  private bookkeeping(summary?: string) {
    return this.lean ? localActivities(summary) : mainActivities(summary);
  }

  async prepare(): Promise<void> {
    const outcomes = await this.steps.run(
      'remotes',
      () =>
        this.bookkeeping(`lock and check ${this.label} for ${this.vmName()}`).prepareRemotes({
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
    const refused = outcomes.filter((o) => !o.ok);
    if (refused.length > 0) {
      // A remote that fails its probe fails the step (the others may still take the backup).
      const step = [...this.steps.steps].reverse().find((st) => st.name === 'remotes')!;
      step.status = 'failure';
      step.error = {
        code: 'REMOTE_UNAVAILABLE',
        message: refused.map((t) => `${t.remoteId}: ${t.error ?? 'unavailable'}`).join('; '),
      };
    }
    for (const t of refused) {
      this.steps.record({
        name: 'transfer',
        target: t.remoteId,
        status: 'failure',
        error: { code: 'REMOTE_UNAVAILABLE', message: t.error ?? 'unavailable' },
      });
    }
    this.live = outcomes.filter((o) => o.ok).map((o) => o.remoteId);
    if (this.live.length === 0) throw new Error('no target remote is writable');
  }

  lockedRemotes(): string[] {
    return this.live;
  }

  newest(): string | undefined {
    return this.newestOnRemotes;
  }

  async missingBases(
    base: { vdis: Readonly<Record<string, string>>; datetime: string },
    chainVdiUuids: string[],
  ): Promise<Record<string, string[]>> {
    return this.bookkeeping().remotesMissingBase({
      remoteIds: this.live,
      vmUuid: this.input.vm.uuid,
      jobId: this.input.job.id,
      disks: chainVdiUuids
        .filter((v) => base.vdis[v])
        .map((v) => ({ chainVdiUuid: v, baseVdiUuid: base.vdis[v], baseDatetime: base.datetime })),
    });
  }

  async feed(): Promise<() => Feed> {
    return () => ({ remoteIds: this.live, imports: [] });
  }

  async commit(e: Exported): Promise<boolean> {
    // A remote holds this backup only if every part (the XVA, or every disk) reached it.
    const outcome = (id: string) => e.results.map((r) => r.result.targets.find((t) => t.remoteId === id));
    const ok = this.live.filter((id) => outcome(id).every((t) => t?.ok));
    const bytes = e.results.reduce((n, r) => n + r.result.bytes, 0);
    this.recordTargets(
      this.live.map((id) => ({
        remoteId: id,
        ok: ok.includes(id),
        error: outcome(id).find((t) => t && !t.ok)?.error ?? (ok.includes(id) ? undefined : 'not written'),
      })),
      bytes,
    );
    this.live = ok;
    if (ok.length === 0) return false;
    const disks: MetadataDisk[] = e.results
      .filter((r) => r.snapshotVdiUuid)
      .map((r) => ({
        snapshotVdiUuid: r.snapshotVdiUuid!,
        path: r.result.path,
        differencing: r.result.differencing,
      }));
    const written = await this.steps.run('metadata', async () => {
      // Nothing is made visible under a lock another run took over.
      const lost = this.lockLost();
      if (lost) throw new Error(`VM lock lost, backup not completed: ${lost}`);
      const summary = `write metadata of ${this.vmName()} → ${ok.join(', ')}`;
      return (
        this.lean ? localActivities(summary) : poolActivities(this.input.vm.poolId, 'ops', summary)
      ).writeMetadata({
        poolId: this.input.vm.poolId,
        vmUuid: this.input.vm.uuid,
        jobId: this.input.job.id,
        scheduleId: this.input.scheduleId,
        mode: e.mode,
        datetime: e.snapshot.datetime,
        snapshotUuid: e.snapshot.uuid,
        remoteIds: ok,
        disks,
        xvaPath: e.mode === 'full' ? e.results[0].result.path : undefined,
        size: bytes,
        timezone: this.input.timezone,
      });
    });
    this.written = written.filter((w) => w.ok).map((w) => w.remoteId);
    this.datetime = e.snapshot.datetime;
    return this.written.length > 0;
  }

  private recordTargets(targets: TargetOutcome[], bytes: number): void {
    for (const t of targets) {
      this.steps.record({
        name: 'transfer',
        target: t.remoteId,
        status: t.ok ? 'success' : 'failure',
        bytes: t.ok ? bytes : undefined,
        error: t.ok ? undefined : { code: 'REMOTE_WRITE_FAILED', message: t.error ?? 'write failed' },
      });
    }
  }

  async retain(): Promise<void> {
    // Retention only where this backup landed: a failed run never costs an older good backup.
    for (const remoteId of this.written) {
      await this.steps.run(
        'retention',
        () =>
          mainActivities(`retention of ${this.vmName()} on ${remoteId}`).applyRemoteRetention({
            remoteId,
            vmUuid: this.input.vm.uuid,
            jobId: this.input.job.id,
            scheduleId: this.input.scheduleId,
            mode: this.input.job.mode === 'full' ? 'full' : 'delta',
            retention: this.input.retention,
            timezone: this.input.timezone,
          }),
        {
          target: remoteId,
          done: (r) => ({ detail: `kept ${r.kept}, removed ${r.removed.length}, merged ${r.merged.length}` }),
        },
      );
    }
  }

  healthCheckSubject(): { backupId: string } | undefined {
    const remoteId = this.written[0];
    if (!remoteId || !this.datetime) return undefined;
    return { backupId: formatBackupId({ remoteId, vmUuid: this.input.vm.uuid, basename: this.datetime }) };
  }

  async cleanup(): Promise<void> {
    // Releasing is idempotent and only frees this run's locks, so every remote is released.
    await this.bookkeeping(`unlock ${this.label} for ${this.vmName()}`).releaseRemotes({
      remoteIds: this.input.job.remotes,
      vmUuid: this.input.vm.uuid,
      owner: this.input.runId,
    });
  }
}
