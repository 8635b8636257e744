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

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from '@temporalio/client';
import { connectClient, type TemporalTarget } from '../client/connect';
import { setupCluster } from '../server/cluster-setup';
import { startTemporalCluster } from '../test/cluster/harness';
import { connectXapi } from '../xapi';
import { type BenchStack, startBenchStack, timed } from './lib/backup-stack';
import { recordResult } from './lib/results';

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

/** Means of the curl baseline over the dev-server measurements (ms per VM). */
const curlPerVm: number[] = [];

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
    if (!temporal) curlPerVm.push(await curlDeltas(stack));
    console.log(
      `  ${label.padEnd(34)} delta run ${(mean / 1000).toFixed(2)} s, ${(mean / VMS).toFixed(0)} ms per VM (mean of ${RUNS})`,
    );
    return mean;
  } finally {
    await stack.close();
  }
}

/**
 * The simulator's share: after 2 more blocks changed in every disk, curl of each VM's delta export
 * against the job's snapshot (what the next run would export), 4 at a time as the job runs them;
 * milliseconds per VM.
 */
async function curlDeltas(stack: BenchStack): Promise<number> {
  const p = stack.sim.pools[0];
  for (const vdi of await vdisOf(stack)) await p.control.writeRandomBlocks(vdi, { count: 2, seed: 'curl' });
  const xapi = await connectXapi({ url: p.url, username: p.username, password: p.password });
  try {
    const urls = Object.entries(
      await xapi.getAllRecords<{ is_a_snapshot: boolean; snapshot_of: string }>('VDI'),
    )
      .filter(([, v]) => v.is_a_snapshot)
      .map(
        ([snap, v]) =>
          `${p.url}/export_raw_vdi?session_id=${xapi.sessionId}&vdi=${v.snapshot_of}&base=${snap}&format=vhd`,
      );
    if (urls.length !== VMS) throw new Error(`expected one job snapshot per VM, found ${urls.length}`);
    const curl = (url: string) =>
      new Promise<void>((resolve, reject) =>
        spawn('curl', ['-sS', '--fail', '-o', '/dev/null', url], { stdio: 'inherit' }).on('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`curl exited ${code}`)),
        ),
      );
    const { ms } = await timed(async () => {
      const queue = [...urls];
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let u = queue.shift(); u; u = queue.shift()) await curl(u);
        }),
      );
    });
    return ms / VMS;
  } finally {
    await xapi.logout();
  }
}

async function vdisOf(stack: BenchStack): Promise<string[]> {
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
  recordResult({
    bench: 'backup-cluster',
    figure: `delta run per VM, PostgreSQL cluster, mTLS (${VMS} VMs, concurrency 4)`,
    value: mean(pg) / VMS,
    unit: 'ms',
    baseline: 'the same on the dev server (SQLite)',
    baselineValue: mean(dev) / VMS,
  });
  recordResult({
    bench: 'backup-cluster',
    figure: `delta run per VM, dev server (${VMS} VMs, concurrency 4)`,
    value: mean(dev) / VMS,
    unit: 'ms',
    baseline: 'curl of the same delta exports, 4 at a time',
    baselineValue: mean(curlPerVm),
  });
} finally {
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
