/**
 * Worker memory while streaming (issue 5, benchmark d): peak RSS of a separate `xcpb worker`
 * process backing up a large sparse disk, against the peak of the same worker backing up a disk
 * 1/10 the size in the same run: flat means the data path streams.
 * Run: node --import tsx bench/backup-rss.ts
 * Env: XCPB_BENCH_DISK (default 20GiB), XCPB_BENCH_DATA (default 2GiB of data).
 */
import { parseSize } from '../simulator/scenario';
import { mib, startBenchStack, timed } from './lib/backup-stack';

const BLOCK = 2 << 20;
const size = Math.ceil(parseSize(process.env.XCPB_BENCH_DISK ?? '20GiB') / BLOCK) * BLOCK;
const data = parseSize(process.env.XCPB_BENCH_DATA ?? '2GiB');

async function peakFor(diskSize: number, dataBytes: number): Promise<{ rss: number; ms: number }> {
  const stack = await startBenchStack({
    childWorker: true,
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

const small = await peakFor(Math.ceil(size / 10 / BLOCK) * BLOCK, data / 10);
const big = await peakFor(size, data);
console.log(
  `worker peak RSS, ${mib(Math.ceil(size / 10 / BLOCK) * BLOCK)} MiB disk with ${mib(data / 10)} MiB data: ${mib(small.rss)} MiB (${(small.ms / 1000).toFixed(1)} s)`,
);
console.log(
  `worker peak RSS, ${mib(size)} MiB disk with ${mib(data)} MiB data: ${mib(big.rss)} MiB (${(big.ms / 1000).toFixed(1)} s)`,
);
console.log(
  `ratio big / small: ${(big.rss / small.rss).toFixed(2)} (1.00 = flat: memory does not grow with the disk)`,
);
