/**
 * Scale (issue 14): one job of 10,000 VMs with 1 MiB disks on the simulator, one worker. Records
 * the wall time and time per VM (against one VM's own backup alone in the same pool, and the whole
 * run of a one-VM job there, whose selection lists every VM of the pool), and the longest history
 * and the largest payload of every workflow of the run (read back with fetchHistory), and checks
 * that the complete report reaches `xcpb runs show` and the typed client.
 * Run: node --import tsx bench/scale-10k.ts
 * Env: XCPB_BENCH_VMS (default 10000), XCPB_BENCH_CONCURRENCY (default 16).
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import { runReportOf, runResultOf } from '../client/run-result';
import { jobInput } from '../core/job-input';
import type { RunResult } from '../core/run-report';
import { MAIN_QUEUE } from '../core/task-queues';
import { startBenchStack, timed } from './lib/backup-stack';
import { elapsedMs, recordResult } from './lib/results';

const BENCH = 'scale-10k';
const count = Number(process.env.XCPB_BENCH_VMS ?? 10_000);
const concurrency = Number(process.env.XCPB_BENCH_CONCURRENCY ?? 16);
const PAYLOAD_LIMIT = 512 * 1024;
const HISTORY_GOAL = 10_000; // the goal; the scale test holds histories to 2,000
const repoRoot = path.resolve(import.meta.dirname, '..');

const vm = (i: number, tag: string) => ({
  name: `${tag}-${String(i).padStart(5, '0')}`,
  tags: [tag],
  power: 'Running' as const,
  disks: [{ name: `disk ${i}`, size: '1MiB', content: { type: 'random' as const, seed: i + 1, blocks: 1 } }],
});
const schedules = [{ id: 's', cron: '0 1 * * *', retention: { remote: 2, snapshot: 1 } }];

/** Every payload in a history (any depth): its data and metadata bytes. */
function payloadSizes(value: unknown, out: number[] = []): number[] {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return out;
  const v = value as Record<string, unknown>;
  if (v.data instanceof Uint8Array && 'metadata' in v) {
    const meta = Object.entries((v.metadata ?? {}) as Record<string, Uint8Array>);
    out.push(v.data.length + meta.reduce((n, [k, m]) => n + k.length + (m?.length ?? 0), 0));
    return out;
  }
  for (const child of Array.isArray(value) ? value : Object.values(v)) payloadSizes(child, out);
  return out;
}

const stack = await startBenchStack({
  scenario: {
    pools: [
      {
        id: 'bench',
        credentials: [{ username: 'root', password: 'bench-pw' }],
        srs: [{ id: 'local', name: 'Local', size: '256GiB', default: true }],
        vms: [vm(0, 'alone'), ...Array.from({ length: count }, (_, i) => vm(i, 'many'))],
      },
    ],
  },
  jobs: [
    { id: 'alone', mode: 'delta', vms: { tags: ['alone'] }, remotes: ['bench'], schedules },
    { id: 'many', mode: 'delta', concurrency, vms: { tags: ['many'] }, remotes: ['bench'], schedules },
  ],
});
try {
  await stack.runJob('alone'); // warm-up: workflow bundle, sessions, caches
  const one = await timed(() => stack.runJob('alone'));
  // the VM's own workflow, without the job's selection (which lists the pool's VMs)
  const oneVm = elapsedMs(one.value.vms[0].start, one.value.vms[0].end);

  const job = stack.config.jobs.find((j) => j.id === 'many')!;
  const handle = await stack.client.workflow.start('backupJob', {
    taskQueue: MAIN_QUEUE,
    workflowId: `xcpb:many:bench-scale`,
    args: [jobInput(job, job.schedules[0])],
  });
  const many = await timed(() => runResultOf(handle));
  const result = many.value as RunResult;
  if (result.status !== 'success' || result.counts.success !== count)
    throw new Error(`the run did not back up every VM: ${JSON.stringify({ ...result, vms: undefined })}`);

  // The complete report: through the typed client, and `xcpb runs show` as a person would.
  const report = await runReportOf(handle, { config: stack.config });
  if (report.vms.length !== count) throw new Error(`typed client: ${report.vms.length} VMs of ${count}`);
  const configFile = path.join(stack.dir, 'config.json');
  await writeFile(configFile, JSON.stringify(stack.config));
  const shown = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      [
        path.join(repoRoot, 'bin/xcpb.mjs'),
        'runs',
        'show',
        handle.workflowId,
        '--json',
        '--config',
        configFile,
      ],
      { env: { ...process.env, TEMPORAL_ADDRESS: stack.temporalAddress }, maxBuffer: 1024 ** 3 },
      (err, stdout, stderr) => (err ? reject(new Error(`xcpb runs show: ${stderr}`)) : resolve(stdout)),
    ),
  );
  const shownVms = (JSON.parse(shown) as { vms: unknown[] }).vms.length;
  if (shownVms !== count) throw new Error(`xcpb runs show: ${shownVms} VMs of ${count}`);

  // Every workflow of the run: the run, its guard, its batches, its VMs (this server holds nothing else).
  const ids: string[] = [];
  for await (const w of stack.client.workflow.list()) ids.push(w.workflowId);
  let longest = { id: '', events: 0 };
  let largest = { id: '', bytes: 0 };
  const queue = [...new Set([handle.workflowId, ...ids])];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        const history = await stack.client.workflow.getHandle(id).fetchHistory();
        const events = (history.events ?? []) as temporal.api.history.v1.IHistoryEvent[];
        if (events.length > longest.events) longest = { id, events: events.length };
        for (const size of payloadSizes(events)) if (size > largest.bytes) largest = { id, bytes: size };
      }
    }),
  );
  console.log(`${ids.length} workflows read; longest history ${longest.id}, largest payload ${largest.id}`);

  const perVm = many.ms / count;
  // How busy the job's concurrency was: the VMs' time in flight over the run's wall time, and over
  // the time from the first VM's start to the last one's end (without the run's own start and end).
  const busy = report.vms.reduce((n, v) => n + elapsedMs(v.start, v.end), 0);
  const inFlight = busy / many.ms;
  const at = (t: number | string | undefined) => elapsedMs(0, t);
  const first = report.vms.reduce((t, v) => Math.min(t, at(v.start)), Number.POSITIVE_INFINITY);
  const last = report.vms.reduce((t, v) => Math.max(t, at(v.end)), 0);
  recordResult({
    bench: BENCH,
    figure: `${count} VMs in one job: wall time`,
    value: many.ms / 1000,
    unit: 's',
  });
  recordResult({
    bench: BENCH,
    figure: `${count} VMs in one job: time per VM`,
    value: perVm,
    unit: 'ms',
    baseline: "one VM's backup alone (its own workflow)",
    baselineValue: oneVm,
  });
  recordResult({
    bench: BENCH,
    figure: `a one-VM job in the pool of ${count + 1} VMs (its selection lists them all)`,
    value: one.ms,
    unit: 'ms',
  });
  recordResult({
    bench: BENCH,
    figure: `${count} VMs in one job: VMs in flight on average`,
    value: inFlight,
    unit: 'VMs',
    baseline: "the job's concurrency",
    baselineValue: concurrency,
  });
  recordResult({
    bench: BENCH,
    figure: `${count} VMs in one job: VMs in flight from the first VM's start to the last one's end`,
    value: busy / (last - first),
    unit: 'VMs',
    baseline: "the job's concurrency",
    baselineValue: concurrency,
  });
  recordResult({
    bench: BENCH,
    figure: 'largest payload in any history of the run',
    value: largest.bytes / 1024,
    unit: 'KiB',
    goal: '≤ 512 KiB',
    met: largest.bytes <= PAYLOAD_LIMIT,
  });
  recordResult({
    bench: BENCH,
    figure: 'longest history of any workflow of the run',
    value: longest.events,
    unit: 'events',
    goal: `≤ ${HISTORY_GOAL}`,
    met: longest.events <= HISTORY_GOAL,
  });
  recordResult({
    bench: BENCH,
    figure: 'full report stored beside the backups',
    value: JSON.stringify(report).length / 1024,
    unit: 'KiB',
  });
} finally {
  await stack.close();
}
