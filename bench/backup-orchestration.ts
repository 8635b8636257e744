/**
 * Orchestration overhead (issue 5, benchmark c): a delta job over many VMs with 1 MiB disks at a
 * given concurrency, wall time and time per VM; against the baseline of one VM alone in the same
 * run (what a single VM's run costs end to end).
 * Run: node --import tsx bench/backup-orchestration.ts
 * Env: XCPB_BENCH_VMS (default 200), XCPB_BENCH_CONCURRENCY (default 16).
 */
import { startBenchStack, timed } from './lib/backup-stack';

const count = Number(process.env.XCPB_BENCH_VMS ?? 200);
const concurrency = Number(process.env.XCPB_BENCH_CONCURRENCY ?? 16);
const vm = (i: number, tag: string) => ({
  name: `${tag}-${String(i).padStart(4, '0')}`,
  tags: [tag],
  power: 'Running' as const,
  disks: [{ name: `disk ${i}`, size: '1MiB', content: { type: 'random' as const, seed: i + 1 } }],
});
const schedules = [{ id: 's', cron: '0 1 * * *', retention: { remote: 2, snapshot: 1 } }];

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
  await stack.runJob('alone'); // warm-up: workflow bundle, sessions, caches
  const one = await timed(() => stack.runJob('alone'));
  const many = await timed(() => stack.runJob('many'));
  const failed = many.value.vms.filter((v) => v.status !== 'success');
  if (failed.length) throw new Error(`${failed.length} VMs failed: ${JSON.stringify(failed[0])}`);
  const perVm = many.ms / count;
  console.log(`one VM alone (delta, warm):         ${(one.ms / 1000).toFixed(2)} s`);
  console.log(
    `${count} VMs at concurrency ${concurrency}:      ${(many.ms / 1000).toFixed(1)} s wall, ${(perVm / 1000).toFixed(3)} s per VM`,
  );
  console.log(`ratio (time per VM in the big run / one VM alone): ${(perVm / one.ms).toFixed(3)}`);
  console.log(
    `speed-up over running them one after the other:   ${((one.ms * count) / many.ms).toFixed(1)}x`,
  );
} finally {
  await stack.close();
}
