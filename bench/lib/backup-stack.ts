// The product's stack for benchmarks: a Temporal dev server of its own, the simulator, a local
// remote, and the workers (in this process, or as a separate `xcpb worker` process for RSS).

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { connectClient, type TemporalTarget } from '../../client/connect';
import { runReportOf } from '../../client/run-result';
import type { Config } from '../../core/config/schema';
import { validateConfig } from '../../core/config/validate';
import { jobInput } from '../../core/job-input';
import type { RunReport } from '../../core/run-report';
import { MAIN_QUEUE } from '../../core/task-queues';
import { startOwnedDevServer } from '../../server/dev-server';
import { ensureTemporalCli } from '../../server/temporal-cli';
import { type Scenario, type Simulator, startSimulator } from '../../simulator';
import { installRuntime } from '../../workers/runtime';
import { connectWorkers, createWorkerSet, type WorkerSet } from '../../workers/workers';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const PASSWORD_ENV = 'XCPB_BENCH_POOL_PASSWORD';

export interface BenchStack {
  sim: Simulator;
  config: Config;
  client: Client;
  dir: string;
  remoteDir: string;
  /** the Temporal frontend the workers and the client use (for the CLI) */
  temporalAddress: string;
  runJob(jobId: string): Promise<RunReport>;
  /** peak RSS of the worker process in bytes (child workers only) */
  workerPeakRss(): Promise<number | undefined>;
  close(): Promise<void>;
}

export async function startBenchStack(o: {
  scenario: Scenario;
  jobs: unknown[];
  childWorker?: boolean;
  /** the child worker's command, from the root (default bin/xcpb.mjs; dist/xcpb.mjs: the built one) */
  workerEntry?: string;
  /** a Temporal of its own (bench/backup-cluster.ts); default: a dev server started here */
  temporal?: TemporalTarget;
}): Promise<BenchStack> {
  const dir = await mkdtemp(path.join(process.env.XCPB_BENCH_DIR ?? os.tmpdir(), 'xcpb-bench-'));
  const server = o.temporal
    ? { address: o.temporal.address, stop: async () => {} }
    : await startOwnedDevServer({ cli: await ensureTemporalCli(), logFile: path.join(dir, 'temporal.log') });
  const target: TemporalTarget = o.temporal ?? { address: server.address, namespace: 'default' };
  const sim = await startSimulator({ scenario: o.scenario, dataDir: path.join(dir, 'sim') });
  const remoteDir = path.join(dir, 'remote');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(remoteDir);
  process.env[PASSWORD_ENV] = sim.pools[0].password;
  const checked = validateConfig({
    pools: sim.pools.map((p) => ({
      id: p.id,
      url: p.url,
      username: p.username,
      password: { env: PASSWORD_ENV },
    })),
    remotes: [{ id: 'bench', url: `file://${remoteDir}` }],
    jobs: o.jobs,
  });
  if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
  const config = checked.config;
  const client = await connectClient(target);
  const connection = client.connection;

  let workers: WorkerSet | undefined;
  let running: Promise<void> | undefined;
  let child: ChildProcess | undefined;
  if (o.childWorker) {
    const file = path.join(dir, 'config.json');
    await writeFile(file, JSON.stringify(config));
    const entry = path.join(repoRoot, o.workerEntry ?? 'bin/xcpb.mjs');
    // XCPB_BENCH_WORKER_ARGS: node options for the worker alone (`--cpu-prof --cpu-prof-dir=…`: a
    // profile of the product's side, which NODE_OPTIONS cannot give)
    const nodeArgs = (process.env.XCPB_BENCH_WORKER_ARGS ?? '').split(' ').filter(Boolean);
    child = spawn(process.execPath, [...nodeArgs, entry, 'worker', '--config', file], {
      env: { ...process.env, TEMPORAL_ADDRESS: server.address },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.on('data', (c: Buffer) => c.toString().includes('worker ready') && resolve());
      child!.once('exit', (code) => reject(new Error(`worker exited ${code}`)));
    });
  } else {
    installRuntime();
    const nc = await connectWorkers(target);
    workers = await createWorkerSet({ config, connection: nc, namespace: target.namespace });
    running = workers.run().finally(() => nc.close());
  }
  let n = 0;
  return {
    sim,
    config,
    client,
    dir,
    remoteDir,
    temporalAddress: target.address,
    async runJob(jobId) {
      const job = config.jobs.find((j) => j.id === jobId)!;
      const handle = await client.workflow.start('backupJob', {
        taskQueue: MAIN_QUEUE,
        workflowId: `xcpb:${jobId}:bench-${++n}`,
        args: [jobInput(job, job.schedules[0])],
      });
      return runReportOf(handle, { config });
    },
    async workerPeakRss() {
      if (!child?.pid) return undefined;
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      const kib = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
      return kib ? Number(kib) * 1024 : undefined;
    },
    async close() {
      workers?.shutdown();
      await running;
      if (child && child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child!.once('exit', r));
      }
      await connection.close();
      await sim.close();
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const mib = (n: number) => (n / 1024 ** 2).toFixed(0);
export const mbps = (bytes: number, ms: number) => (bytes / 1024 ** 2 / (ms / 1000)).toFixed(1);

export async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await f();
  return { ms: performance.now() - t, value };
}
