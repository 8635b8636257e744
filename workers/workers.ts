// The worker processes' insides (DESIGN §4): the main worker (workflows, remote and bookkeeping
// activities) and, per pool, one worker per pool queue whose slot count IS the pool's concurrency.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/activity';
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createBackupActivities } from '../activities';
import { createPoolRegistry, type PoolRegistry } from '../activities/pools';
import { connectionFailure, sdkConnectionOptions, type TemporalTarget } from '../client/connect';
import type { Config } from '../core/config/schema';
import { MAIN_QUEUE, type PoolQueueKind, poolQueue } from '../core/task-queues';
import type { MountedRemote } from '../remotes/mounted';
import { openRemote } from '../remotes/open-remote';
import type { Remote } from '../remotes/remote';
import { stateDir } from '../server/dev-server';
import { metricsSinks, type ProductMetrics } from './metrics';

export const workflowsPath = path.resolve(import.meta.dirname, '../workflows/index.ts');
const metricsInterceptorPath = path.resolve(import.meta.dirname, '../workflows/metrics-interceptor.ts');
const execFileAsync = promisify(execFile);
const require = createRequire(import.meta.url);

/**
 * Bundles the workflow code (webpack, ~2 s), in a child process: webpack would stay in this
 * process's memory for its whole life (~150 MiB of the worker's RSS). Bundle once per process and
 * share it between its workers (createWorkerSet's `workflowBundle`). A bundle is kept in the state
 * folder with the hash of every file it was built from, and reused while none of them changed: a
 * restarted worker (after a crash, an upgrade that did not touch the workflows) starts at once.
 */
export async function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  // From the sources (workers/) or the built command (dist/): both one folder below the root.
  const child = path.resolve(import.meta.dirname, '../workers/bundle-workflows.mjs');
  const inputs = { workflowsPath, interceptorModules: [metricsInterceptorPath] };
  // What else decides the bundle: the SDK, every installed dependency's version (the lock file:
  // the source maps name some packages' sources rather than the code they ship), this child.
  const sdk = JSON.parse(await readFile(require.resolve('@temporalio/worker/package.json'), 'utf8')).version;
  const lock = await readFile(path.resolve(import.meta.dirname, '../package-lock.json')).catch(() => '');
  const key = sha256(
    JSON.stringify({ inputs, sdk, lock: sha256(lock), child: await readFile(child, 'utf8') }),
  );
  const cached = path.join(stateDir(), 'workflow-bundles', `${key}.json`);
  const hit = await readCachedBundle(cached);
  if (hit) return hit;
  let out: string;
  try {
    ({ stdout: out } = await execFileAsync(process.execPath, [child, JSON.stringify(inputs)], {
      maxBuffer: 256 * 1024 * 1024,
      // Node's own flags (heap size, loaders) are not needed to bundle.
      env: { ...process.env, NODE_OPTIONS: '' },
    }));
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`bundling the workflow code failed: ${stderr || (err as Error).message}`);
  }
  const { code, sourceMap, sources } = JSON.parse(out) as WorkflowBundleWithSourceMap & { sources: string[] };
  const hashes = await Promise.all(
    sources.map(async (f) => ({ file: f, sha256: sha256(await readFile(f)) })),
  );
  // Best effort: a worker that cannot write its state folder bundles again next time.
  await writeAtomic(cached, JSON.stringify({ code, sourceMap, sources: hashes })).catch(() => {});
  await forgetOldBundles(path.dirname(cached)).catch(() => {});
  return { code, sourceMap };
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** The cached bundle, if every file it was built from is unchanged. */
async function readCachedBundle(file: string): Promise<WorkflowBundleWithSourceMap | undefined> {
  try {
    const entry = JSON.parse(await readFile(file, 'utf8')) as WorkflowBundleWithSourceMap & {
      sources: { file: string; sha256: string }[];
    };
    if (entry.sources.length === 0) return undefined;
    for (const s of entry.sources) if (sha256(await readFile(s.file)) !== s.sha256) return undefined;
    const now = new Date();
    await utimes(file, now, now).catch(() => {}); // last used: kept by forgetOldBundles
    return { code: entry.code, sourceMap: entry.sourceMap };
  } catch {
    return undefined; // none yet, a file gone, or a torn entry: bundle again
  }
}

/** Bundles of code left behind by upgrades (unused for a week) are deleted. */
async function forgetOldBundles(dir: string): Promise<void> {
  const weekAgo = Date.now() - 7 * 24 * 3600_000;
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    if ((await stat(file)).mtimeMs < weekAgo) await rm(file, { force: true });
  }
}

async function writeAtomic(file: string, data: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, data);
  await rename(temp, file);
}

export function remoteRegistry(config: Config): ((remoteId: string) => Remote) & { close(): Promise<void> } {
  // SMB/NFS shares are mounted in the state folder, on first use, and unmounted by close().
  const mountRoot = path.join(stateDir(), 'mounts');
  const remotes = new Map(config.remotes.map((r) => [r.id, openRemote(r, { mountRoot })]));
  const registry = (remoteId: string) => {
    const remote = remotes.get(remoteId);
    if (!remote)
      throw ApplicationFailure.nonRetryable(
        `unknown remote "${remoteId}" (not in this worker's config)`,
        'UNKNOWN_REMOTE',
      );
    return remote;
  };
  return Object.assign(registry, {
    async close() {
      for (const remote of remotes.values()) {
        if ('unmount' in remote) await (remote as MountedRemote).unmount().catch(() => {});
      }
    },
  });
}

export interface WorkerSetOptions {
  config: Config;
  connection: NativeConnection;
  namespace?: string;
  workflowBundle?: WorkflowBundleWithSourceMap;
  /** pools this process serves (all configured pools by default) */
  poolIds?: string[];
  /** injected for tests */
  pools?: PoolRegistry;
  /** How long a VM lock lives without a refresh (default DEFAULT_VM_LOCK_STALE_MS) */
  vmLockStaleMs?: number;
  /** How long a remote may take no data before an export drops it (default fan-out DEFAULT_STALL_MS) */
  transferStallMs?: number;
  /** where finished runs and merges are counted (`xcpb worker --metrics`) */
  metrics?: ProductMetrics;
}

export interface WorkerSet {
  workers: Worker[];
  run(): Promise<void>;
  shutdown(): void;
}

const OPS_SLOTS = 50;

// Heartbeats reach the server at least this often (the SDK's default is 80% of the heartbeat
// timeout, ~24 s): a cancellation is learned through them, so this bounds how long a cancelled
// export keeps streaming.
const HEARTBEAT_THROTTLE = '5s';
const heartbeats = {
  maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
  defaultHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
};

export async function createWorkerSet(o: WorkerSetOptions): Promise<WorkerSet> {
  const pools = o.pools ?? createPoolRegistry(o.config.pools);
  const remotes = remoteRegistry(o.config);
  const activities = createBackupActivities({
    pools,
    remotes,
    vmLockStaleMs: o.vmLockStaleMs,
    smtp: o.config.smtp,
    transferStallMs: o.transferStallMs,
    onMerge: o.metrics && ((remoteId, seconds) => o.metrics?.mergeDone(remoteId, seconds)),
  });
  const namespace = o.namespace ?? 'default';
  const workflowBundle = o.workflowBundle ?? (await bundleWorkflows());
  const workers: Worker[] = [
    await Worker.create({
      connection: o.connection,
      namespace,
      taskQueue: MAIN_QUEUE,
      ...heartbeats,
      workflowBundle,
      activities,
      sinks: metricsSinks(o.metrics),
    }),
  ];
  for (const pool of o.config.pools.filter((p) => !o.poolIds || o.poolIds.includes(p.id))) {
    const slots: Record<PoolQueueKind, number> = {
      snapshot: pool.concurrency.snapshot,
      'disk-export': pool.concurrency.diskExport,
      'vm-export': pool.concurrency.vmExport,
      import: pool.concurrency.import,
      ops: OPS_SLOTS,
    };
    for (const [kind, max] of Object.entries(slots) as [PoolQueueKind, number][]) {
      workers.push(
        await Worker.create({
          connection: o.connection,
          namespace,
          taskQueue: poolQueue(pool.id, kind),
          activities,
          maxConcurrentActivityTaskExecutions: max,
          ...heartbeats,
        }),
      );
    }
  }
  return {
    workers,
    async run() {
      try {
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        await pools.close();
        await remotes.close();
      }
    },
    shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}

/** The native connection the workers poll through (an address alone: plain gRPC). */
export async function connectWorkers(target: string | TemporalTarget): Promise<NativeConnection> {
  const t: TemporalTarget = typeof target === 'string' ? { address: target, namespace: 'default' } : target;
  const options = await sdkConnectionOptions(t);
  try {
    return await NativeConnection.connect(options);
  } catch (err) {
    throw await connectionFailure(t, err, options);
  }
}
