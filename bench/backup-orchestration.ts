/**
 * Orchestration overhead (issue 5 benchmark c, issue 14): what Temporal round trips cost around
 * the work. One VM alone (a delta of a 1 MiB disk, warm), against its own VM workflow's time in the
 * run's report (the rest is the job around it: guard, selection, child start); then a delta job
 * over many VMs at a given concurrency, time per VM against the one VM alone.
 * The one VM's steps are printed with their times: where its run goes.
 * Run: node --import tsx bench/backup-orchestration.ts
 * Env: XCPB_BENCH_VMS (default 200), XCPB_BENCH_CONCURRENCY (default 16).
 */
import type { VmReport } from '../core/run-report';
import { startBenchStack, timed } from './lib/backup-stack';
import { elapsedMs, recordResult } from './lib/results';

const BENCH = 'backup-orchestration';
const ONE_VM_GOAL_S = 0.5;
const PER_VM_GOAL_MS = 50;

const count = Number(process.env.XCPB_BENCH_VMS ?? 200);
const concurrency = Number(process.env.XCPB_BENCH_CONCURRENCY ?? 16);
const vm = (i: number, tag: string) => ({
  name: `${tag}-${String(i).padStart(4, '0')}`,
  tags: [tag],
  power: 'Running' as const,
  disks: [{ name: `disk ${i}`, size: '1MiB', content: { type: 'random' as const, seed: i + 1 } }],
});
const schedules = [{ id: 's', cron: '0 1 * * *', retention: { remote: 2, snapshot: 1 } }];

/** The VM's steps on one line each, offset from the VM's start: where a run's time goes. */
function printSteps(report: VmReport): void {
  for (const s of report.steps) {
    const at = elapsedMs(report.start, s.start);
    const took = elapsedMs(s.start, s.end);
    console.log(
      `  ${String(at).padStart(5)} ms +${String(took).padStart(4)} ms  ${s.name}${s.target ? ` ${s.target}` : ''} (${s.status})`,
    );
  }
}

const stack = await startBenchStack({
  scenario: {
    pools: [
      {
        id: 'bench',
        credentials: [{ username: 'root', password: 'bench-pw' }],
        srs: [{ id: 'local', name: 'Local', size: '64GiB', default: true }],
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
  await stack.runJob('alone'); // warm-up: workflow bundle, sessions, caches; the first full
  const one = await timed(() => stack.runJob('alone'));
  const oneVm = one.value.vms[0];
  if (oneVm?.status !== 'success') throw new Error(`the VM alone failed: ${JSON.stringify(oneVm)}`);
  console.log(
    `one VM alone, its steps (from the VM's start, ${elapsedMs(oneVm.start, oneVm.end)} ms in all):`,
  );
  printSteps(oneVm);
  const many = await timed(() => stack.runJob('many'));
  const failed = many.value.vms.filter((v) => v.status !== 'success');
  if (failed.length) throw new Error(`${failed.length} VMs failed: ${JSON.stringify(failed[0])}`);
  const perVm = many.ms / count;
  recordResult({
    bench: BENCH,
    figure: 'one VM alone (delta of 1 MiB, warm), whole job',
    value: one.ms / 1000,
    unit: 's',
    baseline: "its VM workflow's own time (report)",
    baselineValue: elapsedMs(oneVm.start, oneVm.end) / 1000,
    goal: `≤ ${ONE_VM_GOAL_S} s`,
    met: one.ms / 1000 <= ONE_VM_GOAL_S,
  });
  recordResult({
    bench: BENCH,
    figure: `time per VM, ${count} VMs at concurrency ${concurrency}`,
    value: perVm,
    unit: 'ms',
    baseline: 'one VM alone',
    baselineValue: one.ms,
    goal: `≤ ${PER_VM_GOAL_MS} ms`,
    met: perVm <= PER_VM_GOAL_MS,
  });
  console.log(
    `${count} VMs: ${(many.ms / 1000).toFixed(1)} s wall; ${((one.ms * count) / many.ms).toFixed(1)}× faster than one after the other`,
  );
} finally {
  await stack.close();
}
