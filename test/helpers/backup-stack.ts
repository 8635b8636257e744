// The whole product in one test process: the simulator over real HTTP, local remotes in a temporary
// folder, the real workers on their own namespace of the shared Temporal dev server, and a client.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { NativeConnection, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { type VmRecord, vmDisks } from '../../activities/xapi-records';
import { connectClient, type TemporalTarget } from '../../client/connect';
import { runReportOf } from '../../client/run-result';
import type { Config } from '../../core/config/schema';
import { validateConfig } from '../../core/config/validate';
import { jobInput } from '../../core/job-input';
import type { RunReport } from '../../core/run-report';
import { MAIN_QUEUE } from '../../core/task-queues';
import { type Scenario, type SimPool, type Simulator, startSimulator } from '../../simulator';
import { installRuntime } from '../../workers/runtime';
import { bundleWorkflows, connectWorkers, createWorkerSet, type WorkerSet } from '../../workers/workers';
import { connectXapi, type XapiClient } from '../../xapi';
import { judgeChain } from '../tools/vhd-chain-judge';
import { claimNamespace, temporalAddress, testClient } from './temporal';

export const PASSWORD_ENV = 'XCPB_TEST_POOL_PASSWORD';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** One workflow bundle per test file (webpack takes seconds). */
export const sharedBundle = () => (bundle ??= bundleWorkflows());

export interface StackOptions {
  /** a scenario, or `demo` for the demo pool of simulator/scenarios/demo.yaml */
  scenario: Scenario | 'demo';
  jobs: unknown[];
  remotes?: string[];
  /** Further remotes, as config entries (S3, encrypted…), beside the local folders of `remotes`. */
  remoteConfigs?: Record<string, unknown>[];
  poolConcurrency?: { snapshot?: number; diskExport?: number; vmExport?: number; import?: number };
  /** the config's smtp section (reports by email) */
  smtp?: unknown;
  /** start the workers in this process (default true) */
  workers?: boolean;
  /** VM lock stale period of the workers (default: the product's) */
  vmLockStaleMs?: number;
  /** how long a remote may take no data before an export drops it (default: the product's) */
  transferStallMs?: number;
  /** another Temporal than the shared dev server (test/cluster): its client connects there */
  temporal?: TemporalTarget;
}

export class BackupStack {
  private counter = 0;
  constructor(
    readonly sim: Simulator,
    readonly config: Config,
    readonly client: Client,
    readonly namespace: string,
    readonly dir: string,
    private connection?: NativeConnection,
    readonly vmLockStaleMs?: number,
    readonly transferStallMs?: number,
    private workerSet?: WorkerSet,
    private running?: Promise<void>,
  ) {}

  pool(id = this.sim.pools[0].id): SimPool {
    return this.sim.pool(id);
  }

  /** Our XAPI client, logged in to a pool of the simulator. */
  async xapi(poolId = this.sim.pools[0].id): Promise<XapiClient> {
    const p = this.pool(poolId);
    return connectXapi({ url: p.url, username: p.username, password: p.password });
  }

  /** uuid of the VM named `name`, and its disks' VDI uuids in device order. */
  async vm(
    name: string,
    poolId?: string,
  ): Promise<{ uuid: string; disks: { uuid: string; name: string }[] }> {
    const xapi = await this.xapi(poolId);
    try {
      const records = await xapi.getAllRecords<VmRecord>('VM');
      const found = Object.values(records).find(
        (v) => v.name_label === name && !v.is_a_snapshot && !v.is_a_template,
      );
      if (!found) throw new Error(`no VM named ${name}`);
      const disks = (await vmDisks(xapi, found)).map((d) => ({ uuid: d.vdi.uuid, name: d.vdi.name_label }));
      return { uuid: found.uuid, disks };
    } finally {
      await xapi.logout();
    }
  }

  remoteDir(remoteId: string): string {
    return path.join(this.dir, 'remotes', remoteId);
  }

  /** Starts a run of a job as a schedule would, and waits for its report. */
  async runJob(jobId: string, scheduleId?: string): Promise<RunReport> {
    const handle = await this.startJob(jobId, scheduleId);
    return runReportOf(handle, { config: this.config });
  }

  async startJob(jobId: string, scheduleId?: string) {
    const job = this.config.jobs.find((j) => j.id === jobId)!;
    const schedule = job.schedules.find((s) => s.id === scheduleId) ?? job.schedules[0];
    return this.client.workflow.start('backupJob', {
      taskQueue: MAIN_QUEUE,
      workflowId: `xcpb:${jobId}:test-${++this.counter}-${Date.now()}`,
      args: [jobInput(job, schedule)],
    });
  }

  async startWorkers(): Promise<void> {
    installRuntime();
    this.connection = await connectWorkers(temporalAddress());
    this.workerSet = await createWorkerSet({
      config: this.config,
      connection: this.connection,
      namespace: this.namespace,
      workflowBundle: await sharedBundle(),
      vmLockStaleMs: this.vmLockStaleMs,
      transferStallMs: this.transferStallMs,
    });
    this.running = this.workerSet.run();
  }

  async stopWorkers(): Promise<void> {
    this.workerSet?.shutdown();
    await this.running;
    await this.connection?.close();
    this.workerSet = undefined;
  }

  /** The config as a file, for worker processes and the CLI. */
  async writeConfigFile(): Promise<string> {
    const file = path.join(this.dir, 'config.json');
    await writeFile(file, JSON.stringify(this.config, null, 2));
    return file;
  }

  async close(): Promise<void> {
    await this.stopWorkers();
    await this.client.connection.close();
    await this.sim.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

export async function startBackupStack(o: StackOptions): Promise<BackupStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-stack-'));
  const sim = await startSimulator({ scenario: o.scenario, dataDir: path.join(dir, 'sim') });
  process.env[PASSWORD_ENV] = sim.pools[0].password;
  const remoteIds = o.remotes ?? ['nas'];
  for (const id of remoteIds) await mkdir(path.join(dir, 'remotes', id), { recursive: true });
  const result = validateConfig({
    pools: sim.pools.map((p) => ({
      id: p.id,
      url: p.url,
      username: p.username,
      password: { env: PASSWORD_ENV },
      concurrency: { snapshot: 2, diskExport: 12, vmExport: 2, ...o.poolConcurrency },
    })),
    remotes: [
      ...remoteIds.map((id) => ({ id, url: `file://${path.join(dir, 'remotes', id)}` })),
      ...(o.remoteConfigs ?? []),
    ],
    jobs: o.jobs,
    ...(o.smtp ? { smtp: o.smtp } : {}),
  });
  if (!result.ok) throw new Error(`test config invalid: ${JSON.stringify(result.problems)}`);
  const namespace = o.temporal?.namespace ?? (await claimNamespace());
  const client = o.temporal ? await connectClient(o.temporal) : await testClient(namespace);
  const stack = new BackupStack(
    sim,
    result.config,
    client,
    namespace,
    dir,
    undefined,
    o.vmLockStaleMs,
    o.transferStallMs,
  );
  if (o.workers !== false) await stack.startWorkers();
  return stack;
}

/** Rebuilds a chain's disk with qemu-img alone (the independent judge) and returns its bytes. */
export async function chainToRaw(files: string[]): Promise<Buffer> {
  const out = path.join(os.tmpdir(), `xcpb-judge-${process.pid}-${Date.now()}.raw`);
  try {
    await judgeChain(out, files);
    return await readFile(out);
  } finally {
    await rm(out, { force: true });
  }
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
