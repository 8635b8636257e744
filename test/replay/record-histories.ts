// Records the event histories the replay test (replay.test.ts) replays against today's workflow
// code: a full (XVA) run, a delta run with its health check, a cancelled run and a restore, each
// with its child workflows. Run it when a workflow change is intended (and guarded by patched()):
//   npx tsx test/replay/record-histories.ts
// (XCPB_REPLAY_OUT=<dir> writes them there instead, to add one beside the committed ones.)
// It starts its own Temporal dev server, the simulator and the workers, and writes
// test/replay/histories/<case>.json. XCPB_RECORD_CASES=batched-run,… writes only those cases, so
// histories of older code (kept to prove patched() still replays them) stay as they were.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { runReportOf } from '../../client/run-result';
import { validateConfig } from '../../core/config/validate';
import { jobInput } from '../../core/job-input';
import { MAIN_QUEUE } from '../../core/task-queues';
import { openRemote } from '../../remotes/open-remote';
import { listVmBackups } from '../../remotes/repository';
import { startOwnedDevServer } from '../../server/dev-server';
import { ensureTemporalCli } from '../../server/temporal-cli';
import { startSimulator } from '../../simulator';
import { connectWorkers, createWorkerSet } from '../../workers/workers';

// XCPB_REPLAY_OUT: another folder, to record new histories without replacing the committed ones.
const OUT = process.env.XCPB_REPLAY_OUT ?? path.join(import.meta.dirname, 'histories');
const PASSWORD_ENV = 'XCPB_REPLAY_POOL_PASSWORD';
const random = (seed: number, blocks: number) => ({ type: 'random' as const, seed, blocks });

const scenario = {
  pools: [
    {
      id: 'lab',
      credentials: [{ username: 'root', password: 'replay-pw' }],
      srs: [
        { id: 'local', name: 'Local', size: '2GiB', default: true },
        { id: 'spare', name: 'Spare', size: '1GiB' },
      ],
      networks: [{ id: 'net0', name: 'Network 0' }],
      vms: [
        {
          name: 'app',
          tags: ['delta'],
          power: 'Running' as const,
          networks: ['net0'],
          disks: [{ name: 'app root', size: '8MiB', content: random(1, 2) }],
        },
        {
          name: 'box',
          tags: ['full'],
          power: 'Halted' as const,
          networks: ['net0'],
          disks: [{ name: 'box root', size: '6MiB', content: random(2, 2) }],
        },
      ],
    },
  ],
};

const daily = (extra = {}) => [
  { id: 'daily', cron: '0 3 * * *', retention: { remote: 5, snapshot: 1 }, ...extra },
];

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-record-'));
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const server = await startOwnedDevServer({ cli: await ensureTemporalCli(console.log) });
  const sim = await startSimulator({ scenario, dataDir: path.join(dir, 'sim') });
  process.env[PASSWORD_ENV] = sim.pools[0].password;
  await mkdir(path.join(dir, 'nas'));
  const checked = validateConfig({
    pools: [{ id: 'lab', url: sim.pools[0].url, username: 'root', password: { env: PASSWORD_ENV } }],
    remotes: [{ id: 'nas', url: `file://${path.join(dir, 'nas')}` }],
    jobs: [
      {
        id: 'delta',
        mode: 'delta',
        vms: { tags: ['delta'] },
        remotes: ['nas'],
        schedules: daily({ healthCheck: { sr: 'Spare', timeout: '30s' } }),
      },
      { id: 'full', mode: 'full', vms: { tags: ['full'] }, remotes: ['nas'], schedules: daily() },
      { id: 'cancel', mode: 'delta', vms: { tags: ['delta'] }, remotes: ['nas'], schedules: daily() },
    ],
  });
  if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
  const config = checked.config;
  const connection = await connectWorkers(server.address);
  const workers = await createWorkerSet({ config, connection, namespace: 'default' });
  const running = workers.run();
  const client = new Client({ connection: await Connection.connect({ address: server.address }) });
  const start = (jobId: string, workflowId: string) => {
    const job = config.jobs.find((j) => j.id === jobId)!;
    return client.workflow.start('backupJob', {
      taskQueue: MAIN_QUEUE,
      workflowId,
      args: [jobInput(job, job.schedules[0])],
    });
  };
  try {
    await mkdir(OUT, { recursive: true });
    const full = await start('full', 'xcpb:full:replay-full');
    await runReportOf(full);
    await save('full-run', client, full);

    // A run in batches (backupBatch children), with its report stored on the remote.
    const batched = await start('full', 'xcpb:full:replay-batched');
    await runReportOf(batched, { config });
    await save('batched-run', client, batched);

    await runReportOf(await start('delta', 'xcpb:delta:replay-first'));
    const control = sim.pool('lab').control;
    const delta = await start('delta', 'xcpb:delta:replay-delta');
    const deltaReport = await runReportOf(delta);
    if (!deltaReport.vms[0].steps.some((s) => s.name === 'healthCheck'))
      throw new Error('the delta run made no health check');
    await save('delta-run', client, delta);

    // Cancelled while its export streams (slowed down so the cancel lands mid-transfer).
    await control.throttle({ bytesPerSecond: 256 * 1024 });
    const cancelled = await start('cancel', 'xcpb:cancel:replay-cancelled');
    for (;;) {
      if ((await control.stats()).current.export_raw_vdi > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await cancelled.cancel();
    await cancelled.result().catch(() => undefined);
    await control.throttle({ bytesPerSecond: 0 });
    await save('cancelled-run', client, cancelled);

    const vmUuid = deltaReport.vms[0].vmUuid;
    const newest = (await listVmBackups(openRemote(config.remotes[0]), vmUuid)).at(-1)!;
    const restore = await client.workflow.start('restoreVm', {
      taskQueue: MAIN_QUEUE,
      workflowId: 'xcpb:restore:replay',
      args: [{ backupId: `nas:${vmUuid}/${newest.basename}`, poolId: 'lab', sr: 'Local' }],
    });
    await restore.result();
    await save('restore', client, restore);
  } finally {
    workers.shutdown();
    await running;
    await connection.close();
    await client.connection.close();
    await sim.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes the workflow's history and those of its children (and theirs), one file per case. */
async function save(name: string, client: Client, handle: WorkflowHandle): Promise<void> {
  const only = process.env.XCPB_RECORD_CASES?.split(',');
  if (only && !only.includes(name)) return;
  const histories: { workflowId: string; history: unknown }[] = [];
  const queue = [handle.workflowId];
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    const history = await client.workflow.getHandle(id).fetchHistory();
    histories.push({ workflowId: id, history: JSON.parse(historyToJSON(history)) });
    for (const e of history.events ?? []) {
      const child = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
      if (child) queue.push(child);
    }
  }
  await writeFile(path.join(OUT, `${name}.json`), `${JSON.stringify(histories, null, 1)}\n`);
  console.log(`${name}: ${histories.map((h) => h.workflowId).join(', ')}`);
}

await main();
