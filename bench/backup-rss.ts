/**
 * Worker memory while streaming (issue 5 benchmark d, issue 14): peak RSS of a separate
 * `xcpb worker` process (default pool slot counts) backing up a large sparse disk, against the
 * peak of the same worker backing up a disk 1/10 the size in the same run: flat means the data
 * path streams; the goal bounds the peak itself. Measured twice: deployed (the built command,
 * dist/xcpb.mjs, in the worker's process environment, workers/process-env.ts: as the Dockerfile and
 * the systemd unit run it), and from the sources under plain `node` (`npx xcpb worker` in a checkout).
 * Run: node --import tsx bench/backup-rss.ts
 * Env: XCPB_BENCH_DISK (default 20GiB), XCPB_BENCH_DATA (default 2GiB of data).
 */
import { buildCommand } from '../bin/build.mjs';
import { parseSize } from '../simulator/scenario';
import { WORKER_PROCESS_ENV } from '../workers/process-env';
import { mib, startBenchStack, timed } from './lib/backup-stack';
import { recordResult } from './lib/results';

const GOAL_MIB = 250;
const BLOCK = 2 << 20;
const size = Math.ceil(parseSize(process.env.XCPB_BENCH_DISK ?? '20GiB') / BLOCK) * BLOCK;
const data = parseSize(process.env.XCPB_BENCH_DATA ?? '2GiB');
const smallSize = Math.ceil(size / 10 / BLOCK) * BLOCK;

async function peakFor(
  diskSize: number,
  dataBytes: number,
  workerEntry: string,
): Promise<{ rss: number; ms: number }> {
  const stack = await startBenchStack({
    childWorker: true,
    workerEntry,
    scenario: {
      pools: [
        {
          id: 'bench',
          credentials: [{ username: 'root', password: 'bench-pw' }],
          srs: [
            {
              id: 'local',
              name: 'Local',
              size: `${Math.ceil((diskSize * 3) / 2 ** 30) + 1}GiB`,
              default: true,
            },
          ],
          vms: [
            {
              name: 'sparse',
              tags: ['sparse'],
              power: 'Halted',
              disks: [
                {
                  name: 'sparse root',
                  size: diskSize,
                  content: { type: 'random', seed: 3, blocks: Math.floor(dataBytes / BLOCK) },
                },
              ],
            },
          ],
        },
      ],
    },
    jobs: [
      {
        id: 'rss',
        mode: 'delta',
        vms: { tags: ['sparse'] },
        remotes: ['bench'],
        schedules: [{ id: 's', cron: '0 1 * * *', retention: { remote: 2 } }],
      },
    ],
  });
  try {
    const run = await timed(() => stack.runJob('rss'));
    if (run.value.status !== 'success') throw new Error(JSON.stringify(run.value));
    return { rss: (await stack.workerPeakRss()) ?? Number.NaN, ms: run.ms };
  } finally {
    await stack.close();
  }
}

/** Both peaks with `env` in the worker's environment (the bench stack passes on its own). */
async function measure(
  env: Record<string, string | undefined>,
  workerEntry: string,
  label: string,
): Promise<void> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const apply = (vars: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(env);
  try {
    const small = await peakFor(smallSize, data / 10, workerEntry);
    const big = await peakFor(size, data, workerEntry);
    console.log(
      `${label}: ${mib(smallSize)} MiB disk with ${mib(data / 10)} MiB data: ${(small.ms / 1000).toFixed(1)} s; ` +
        `${mib(size)} MiB disk with ${mib(data)} MiB data: ${(big.ms / 1000).toFixed(1)} s`,
    );
    const bigMib = big.rss / 2 ** 20;
    recordResult({
      bench: 'backup-rss',
      figure: `worker peak RSS (${label}), ${mib(size)} MiB disk with ${mib(data)} MiB data`,
      value: bigMib,
      unit: 'MiB',
      baseline: `the same worker, ${mib(smallSize)} MiB disk`,
      baselineValue: small.rss / 2 ** 20,
      goal: `≤ ${GOAL_MIB} MiB, flat (≤ 1.10×)`,
      met: bigMib <= GOAL_MIB && big.rss / small.rss <= 1.1,
    });
  } finally {
    apply(saved);
  }
}

await buildCommand();
await measure(WORKER_PROCESS_ENV, 'dist/xcpb.mjs', 'deployed: built, in its environment');
await measure(
  { MALLOC_ARENA_MAX: undefined, NODE_OPTIONS: undefined },
  'bin/xcpb.mjs',
  'sources, plain node',
);
