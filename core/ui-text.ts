// What the Temporal Web UI shows of a run besides its ids (DESIGN §5): the workflows' static summary
// and details ("User Metadata"), each activity's summary, and the run's current details. Pure text
// from what the workflow already has; no secret ever (pools and remotes by id only).
import type { BackupJobInput } from './start-contract';
import { formatBytes, plural } from './words';

type Job = BackupJobInput['job'];

export function runSummary(job: Pick<Job, 'id' | 'mode'>, scheduleId?: string): string {
  return `backup job ${job.id} · ${job.mode}${scheduleId ? ` · schedule ${scheduleId}` : ' · manual'}`;
}

export function runDetails(
  input: Pick<BackupJobInput, 'job' | 'scheduleId' | 'timezone' | 'retention'>,
): string {
  const { job } = input;
  const s = job.vms;
  const selection = s.uuids
    ? `VMs ${s.uuids.join(', ')}`
    : [
        `pools ${s.pools?.join(', ') ?? 'all'}`,
        s.tags ? `tags ${s.tags.join(', ')}` : undefined,
        s.excludeTags ? `not ${s.excludeTags.join(', ')}` : undefined,
        s.powerState && s.powerState !== 'any' ? `${s.powerState} only` : undefined,
      ]
        .filter(Boolean)
        .join(', ');
  return [
    `**Job** ${job.id}${job.name ? ` (${job.name})` : ''} · **mode** ${job.mode}`,
    `**Selection** ${selection}`,
    `**Remotes** ${job.remotes.join(', ') || 'none'}`,
    `**Schedule** ${input.scheduleId ?? 'manual run'} · ${input.timezone}`,
    `**Retention** ${input.retention.remote} on each remote, ${input.retention.snapshot} snapshots`,
  ].join('\n\n');
}

export function vmSummary(vm: { name: string; poolId: string }, job: Pick<Job, 'id' | 'mode'>): string {
  return `${vm.name} · ${job.mode} backup · pool ${vm.poolId} · job ${job.id}`;
}

export function vmDetails(
  vm: { name: string; uuid: string; poolId: string },
  job: Pick<Job, 'id' | 'mode' | 'remotes'>,
): string {
  return [
    `**VM** ${vm.name} (${vm.uuid})`,
    `**Pool** ${vm.poolId} · **job** ${job.id} · **mode** ${job.mode}`,
    `**Remotes** ${job.remotes.join(', ') || 'none'}`,
  ].join('\n\n');
}

export function restoreSummary(backupId: string, poolId: string, sr: string): string {
  return `restore ${backupId} → pool ${poolId}, SR ${sr}`;
}

export function healthCheckSummary(backupId: string, sr: string): string {
  return `health check of ${backupId} on SR ${sr}`;
}

/**
 * The run's current details until its first VM starts (and for good when none matches): what the
 * static summary and details say, which a start by hand (`temporal workflow start`) may lack.
 */
export function runStartDetails(input: Parameters<typeof runDetails>[0]): string {
  return [`**${runSummary(input.job, input.scheduleId)}**`, runDetails(input)].join('\n\n');
}

/** The run's progress, as its current details: VMs done / failed / running, bytes. */
export function runProgress(vms: readonly { status: string }[], bytes: number): string {
  const count = (st: string) => vms.filter((v) => v.status === st).length;
  const done = vms.length - count('running');
  return [
    `**${done}/${plural(vms.length, 'VM')} done**`,
    `${count('success')} succeeded`,
    count('failure') ? `**${count('failure')} failed**` : undefined,
    count('skipped') ? `${count('skipped')} skipped` : undefined,
    count('running') ? `${count('running')} running` : undefined,
    bytes ? `${formatBytes(bytes)} exported` : undefined,
  ]
    .filter(Boolean)
    .join(' · ');
}

/**
 * The same progress from a bounded tally (a run in batches keeps counts, not every VM): VMs done
 * of `total`, how they ended, how many run now, bytes.
 */
export function tallyProgress(
  t: { counts: { vms: number; success: number; failure: number; skipped: number }; bytes: number },
  total: number,
  running: number,
): string {
  const { counts: c } = t;
  return [
    `**${c.vms}/${plural(total, 'VM')} done**`,
    `${c.success} succeeded`,
    c.failure ? `**${c.failure} failed**` : undefined,
    c.skipped ? `${c.skipped} skipped` : undefined,
    running ? `${running} running` : undefined,
    t.bytes ? `${formatBytes(t.bytes)} exported` : undefined,
  ]
    .filter(Boolean)
    .join(' · ');
}
