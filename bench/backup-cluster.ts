/**
 * Delta backups on the production topology against the dev server, in the same run: the same job
 * (XCPB_BENCH_VMS VMs, default 12, at concurrency 4, each with a 64 MiB disk) through
 *   (1) the Temporal dev server (SQLite), and
 *   (2) the Temporal server on PostgreSQL with mutual TLS (test/cluster/harness.ts),
 * each with in-process workers and its own simulator. A first run makes the full chains; then
 * XCPB_BENCH_RUNS (default 3) delta runs, each after changing 2 blocks of every disk, are timed.
 * Each is measured twice, in the order dev, cluster, cluster, dev, so warm-up favours neither;
 * prints the mean delta run time and time per VM of each, and the ratio cluster / dev server.
 * Run: node --import tsx bench/backup-cluster.ts   (needs PostgreSQL and Go, as test/cluster/)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from '@temporalio/client';
import { connectClient, type TemporalTarget } from '../client/connect';
import { setupCluster } from '../server/cluster-setup';
import { startTemporalCluster } from '../test/cluster/harness';
import { type BenchStack, startBenchStack, timed } from './lib/backup-stack';

const VMS = Number(process.env.XCPB_BENCH_VMS ?? 12);
const RUNS = Number(process.env.XCPB_BENCH_RUNS ?? 3);

const scenario = {
  pools: [
    {
      id: 'bench',
      credentials: [{ username: 'root', password: 'bench-pw' }],
      srs: [
        { id: 'local', name: 'Local', size: `${Math.ceil((VMS * 4 * 64) / 1024) + 1}GiB`, default: true },
      ],
      vms: Array.from({ length: VMS }, (_, i) => ({
        name: `vm-${i}`,
        tags: ['bench'],
        power: 'Running' as const,
        disks: [
          { name: `vm-${i} root`, size: '64MiB', content: { type: 'random' as const, seed: i, blocks: 8 } },
        ],
      })),
    },
  ],
};
const jobs = [
  {
    id: 'delta',
    mode: 'delta',
    vms: { tags: ['bench'] },
    remotes: ['bench'],
    concurrency: 4,
    schedules: [{ id: 'd', cron: '0 3 * * *', retention: { remote: RUNS + 2, snapshot: 1 } }],
  },
];

async function measure(label: string, temporal?: TemporalTarget): Promise<number> {
  const stack: BenchStack = await startBenchStack({ scenario, jobs, temporal });
  try {
    const first = await stack.runJob('delta');
    if (first.status !== 'success') throw new Error(`${label}: first run ${first.status}`);
    let total = 0;
    for (let i = 0; i < RUNS; i++) {
      const pool = stack.sim.pools[0];
      for (const vdi of await vdisOf(stack))
        await pool.control.writeRandomBlocks(vdi, { count: 2, seed: `run ${i}` });
      const { ms, value } = await timed(() => stack.runJob('delta'));
      if (value.status !== 'success') throw new Error(`${label}: delta run ${i} ${value.status}`);
      total += ms;
    }
    const mean = total / RUNS;
    console.log(
      `  ${label.padEnd(34)} delta run ${(mean / 1000).toFixed(2)} s, ${(mean / VMS).toFixed(0)} ms per VM (mean of ${RUNS})`,
    );
    return mean;
  } finally {
    await stack.close();
  }
}

async function vdisOf(stack: BenchStack): Promise<string[]> {
  const { connectXapi } = await import('../xapi');
  const p = stack.sim.pools[0];
  const xapi = await connectXapi({ url: p.url, username: p.username, password: p.password });
  try {
    const vdis = await xapi.getAllRecords<{ uuid: string; is_a_snapshot: boolean; name_label: string }>(
      'VDI',
    );
    return Object.values(vdis)
      .filter((v) => !v.is_a_snapshot && v.name_label.endsWith(' root'))
      .map((v) => v.uuid);
  } finally {
    await xapi.logout();
  }
}

console.log(`delta backups of ${VMS} VMs (64 MiB disks, 2 changed blocks each), concurrency 4`);
const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-bench-cluster-'));
const cluster = await startTemporalCluster(dir);
try {
  const client = await connectClient(cluster.target);
  await setupCluster({ connection: client.connection as Connection, namespace: 'default' });
  await client.connection.close();
  // Both orders, so that warming up (JIT, caches) favours neither side.
  const dev: number[] = [];
  const pg: number[] = [];
  dev.push(await measure('dev server (SQLite)'));
  pg.push(await measure('PostgreSQL cluster (mTLS)', cluster.target));
  pg.push(await measure('PostgreSQL cluster (mTLS)', cluster.target));
  dev.push(await measure('dev server (SQLite)'));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(
    `  mean delta run: dev server ${(mean(dev) / 1000).toFixed(2)} s, cluster ${(mean(pg) / 1000).toFixed(2)} s; ` +
      `ratio cluster / dev server: ${(mean(pg) / mean(dev)).toFixed(2)}`,
  );
} finally {
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
