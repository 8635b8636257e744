// kill -9 of the worker process (a real `xcpb worker` child) in the middle of a replica import into a
// second pool, then a new worker process: the retried activity completes the run, and the target SR
// holds exactly one complete replica per kept point, no half VM, no orphan VDI, and the newest
// replica's disks equal the source snapshot's bytes. Kill points: CR mid delta import (raw VDI
// import), CR while making the replica's VDIs (a clone made, not yet marked) and while making the
// replica VM (created, its disk not yet attached), DR mid XVA import; each case has its own stack and
// they run concurrently, each waiting out the queue's heartbeat timeout before Temporal hands the
// killed attempt over.
import { afterAll, describe, expect, it } from 'vitest';
import { runReportOf } from '../../client/run-result';
import { REPLICA_IMPORT_KEY } from '../../core/replica';
import type { SimStats } from '../../simulator/control/client';
import { allSnapshotsOf, pretty, waitFor } from '../durability/checks';
import { type BackupStack, readAll, startBackupStack } from '../helpers/backup-stack';
import { stopAllWorkerProcesses, WorkerProcess } from '../helpers/worker-process';
import {
  describeDisks,
  diskBytes,
  expectNoLeftovers,
  newestJobSnapshot,
  replicasOf,
  vmReport,
} from './helpers';

const JOB = 'replicate';
const PW = 'replica-kill-pw';
const stacks: BackupStack[] = [];

afterAll(async () => {
  await stopAllWorkerProcesses();
  await Promise.all(stacks.map((s) => s.close()));
}, 60_000);

const scenario = {
  pools: [
    {
      id: 'main',
      credentials: [{ username: 'root', password: PW }],
      srs: [{ id: 'local', name: 'Local', size: '2GiB', default: true }],
      vms: [
        {
          name: 'app',
          tags: ['rep'],
          power: 'Halted' as const,
          disks: [
            { name: 'app root', size: '16MiB', content: { type: 'random' as const, seed: 11, blocks: 4 } },
          ],
        },
      ],
    },
    {
      id: 'dr',
      credentials: [{ username: 'root', password: PW }],
      srs: [{ id: 'replicas', name: 'Replicas', size: '2GiB', default: true }],
    },
  ],
};

async function setUp(mode: 'delta' | 'full', keep: number) {
  const stack = await startBackupStack({
    scenario,
    jobs: [
      {
        id: JOB,
        mode,
        vms: { pools: ['main'], tags: ['rep'] },
        srs: [{ pool: 'dr', sr: 'Replicas' }],
        schedules: [{ id: 's', cron: '0 1 * * *', copyRetention: keep }],
      },
    ],
    workers: false,
  });
  stacks.push(stack);
  const worker = await WorkerProcess.start(stack);
  const app = await stack.vm('app', 'main');
  return { stack, worker, app };
}

/**
 * The target after a killed import: complete replicas, VMs not marked complete, VDIs still marked
 * importing, and VDIs of this VM used by no VM nor snapshot (orphans).
 */
async function halfDone(c: Awaited<ReturnType<typeof setUp>>) {
  const replicas = await replicasOf(c.stack, 'dr', c.app.uuid, JOB);
  const complete = replicas.filter((r) => r.vm.other_config['xo:backup:sr']).length;
  const halfVms = replicas.length - complete;
  const xapi = await c.stack.xapi('dr');
  try {
    const vdis = Object.entries(
      await xapi.getAllRecords<{ other_config: Record<string, string>; is_a_snapshot: boolean }>('VDI'),
    );
    const used = new Set(Object.values(await xapi.getAllRecords<{ VDI: string }>('VBD')).map((b) => b.VDI));
    for (const vm of Object.values(await xapi.getAllRecords<{ suspend_VDI: string }>('VM')))
      used.add(vm.suspend_VDI);
    return {
      complete,
      halfVms,
      importingVdis: vdis.filter(([, v]) => v.other_config[REPLICA_IMPORT_KEY] !== undefined).length,
      orphanVdis: vdis.filter(([ref, v]) => v.other_config['xo:backup:vm'] === c.app.uuid && !used.has(ref))
        .length,
    };
  } finally {
    await xapi.logout();
  }
}

/**
 * Runs the job, kills the worker once the target pool reports an import of the given kind under way
 * with the source export throttled, lifts the throttle, starts a new worker and returns the report.
 */
async function runKilledMidImport(
  c: Awaited<ReturnType<typeof setUp>>,
  kind: keyof SimStats['current'],
  bytesPerSecond: number,
) {
  const main = c.stack.pool('main').control;
  await main.throttle({ bytesPerSecond });
  const handle = await c.stack.startJob(JOB);
  try {
    await waitFor(
      `a ${kind} under way on the target pool`,
      async () => (await c.stack.pool('dr').control.stats()).current[kind] > 0,
      90_000,
      20,
    );
    await c.worker.kill();
  } finally {
    await main.throttle({ bytesPerSecond: 0 });
  }
  // The dead worker's connection ends the import on the target: what it left is what the retry meets.
  await waitFor(
    `the killed ${kind} ended`,
    async () => (await c.stack.pool('dr').control.stats()).current[kind] === 0,
  );
  const atKill = await halfDone(c);
  c.worker = await WorkerProcess.start(c.stack);
  return { report: await runReportOf(handle), atKill };
}

/**
 * Runs the job, kills the worker while the target pool answers its first `method` call (held there
 * for a while, then failed, as a call cut by the worker's death), starts a new worker and returns
 * the report with the target's state at the kill.
 */
async function runKilledInCall(c: Awaited<ReturnType<typeof setUp>>, method: string) {
  const target = c.stack.pool('dr').control;
  const calls = async () => (await target.stats()).calls[method] ?? 0;
  const before = await calls();
  await target.injectFault({ method, code: 'INTERNAL_ERROR', params: ['the caller died'] });
  await target.delay(method, 15_000);
  const handle = await c.stack.startJob(JOB);
  try {
    await waitFor(`${method} called on the target pool`, async () => (await calls()) > before, 90_000, 20);
    await c.worker.kill();
  } finally {
    await target.delay(method, 0);
  }
  const atKill = await halfDone(c);
  const halfVms = (await replicasOf(c.stack, 'dr', c.app.uuid, JOB))
    .filter((r) => !r.vm.other_config['xo:backup:sr'])
    .map((r) => r.vm.uuid);
  c.worker = await WorkerProcess.start(c.stack);
  return { report: await runReportOf(handle), atKill, halfVms };
}

/**
 * Exactly `count` replicas, all complete, nothing half-done on the target, and the newest replica's
 * disks equal to what the run exported: the job snapshot a delta run keeps, or (a full run deletes its
 * snapshot) the live disk, unchanged since the run. The source keeps no snapshot but the delta base.
 */
async function expectReplicas(c: Awaited<ReturnType<typeof setUp>>, mode: 'delta' | 'full', count: number) {
  await expectNoLeftovers(c.stack, 'dr', c.app.uuid);
  const replicas = await replicasOf(c.stack, 'dr', c.app.uuid, JOB);
  expect(replicas.map((r) => !!r.vm.other_config['xo:backup:sr'])).toEqual(Array(count).fill(true));
  const newest = replicas.at(-1)!;
  const snapshots = await allSnapshotsOf(c.stack, c.app.uuid);
  let source: Buffer[];
  if (mode === 'delta') {
    const snapshot = await newestJobSnapshot(c.stack, 'main', c.app.uuid, JOB);
    expect(
      snapshots.map((s) => s.uuid),
      'one snapshot: the base of the next delta',
    ).toEqual([snapshot.vm.uuid]);
    expect(newest.vm.other_config['xo:backup:datetime']).toBe(snapshot.vm.other_config['xo:backup:datetime']);
    source = await diskBytes(c.stack, 'main', snapshot.vm);
  } else {
    expect(snapshots, 'a full run leaves no snapshot').toEqual([]);
    const live = await c.stack.vm('app', 'main');
    source = [await readAll(await c.stack.pool('main').control.readVdi(live.disks[0].uuid))];
  }
  expect(describeDisks(await diskBytes(c.stack, 'dr', newest.vm))).toEqual(describeDisks(source));
}

describe.concurrent('kill -9 of the worker mid-import, then a new one: one complete replica per kept point', () => {
  it('CR (delta mode): the retried delta import leaves no half replica', { timeout: 300_000 }, async () => {
    const c = await setUp('delta', 2);
    expect((await c.stack.runJob(JOB)).status).toBe('success');
    await expectReplicas(c, 'delta', 1);
    await c.stack.pool('main').control.writeRandomBlocks(c.app.disks[0].uuid, { count: 4, seed: 'cr kill' });
    const { report, atKill } = await runKilledMidImport(c, 'import_raw_vdi', 1 << 20); // ~8 MiB of delta: ~8 s
    // Killed with the new disk half written: the older replica kept, a VDI still marked importing.
    expect(atKill).toEqual({ complete: 1, halfVms: 0, importingVdis: 1, orphanVdis: 1 });
    expect(vmReport(report, 'app').status, pretty(report)).toBe('success');
    await expectReplicas(c, 'delta', 2);
  });

  it('CR: killed while making the replica VDIs, then while making the replica VM: each retry completes it', {
    timeout: 400_000,
  }, async () => {
    const c = await setUp('delta', 3);
    expect((await c.stack.runJob(JOB)).status).toBe('success');
    await c.stack
      .pool('main')
      .control.writeRandomBlocks(c.app.disks[0].uuid, { count: 2, seed: 'vdis kill' });
    // createReplicaVdis: the clone of the previous replica's VDI made, not yet marked as this run's.
    const vdis = await runKilledInCall(c, 'VDI.set_other_config');
    expect(vdis.atKill).toEqual({ complete: 1, halfVms: 0, importingVdis: 0, orphanVdis: 1 });
    expect(vmReport(vdis.report, 'app').status, pretty(vdis.report)).toBe('success');
    await expectReplicas(c, 'delta', 2);
    await c.stack.pool('main').control.writeRandomBlocks(c.app.disks[0].uuid, { count: 2, seed: 'vm kill' });
    // createCrReplica: the replica VM created, its disk not attached yet.
    const vm = await runKilledInCall(c, 'VBD.create');
    expect(vm.atKill).toEqual({ complete: 2, halfVms: 1, importingVdis: 1, orphanVdis: 1 });
    expect(vmReport(vm.report, 'app').status, pretty(vm.report)).toBe('success');
    await expectReplicas(c, 'delta', 3);
  });

  it('DR (full mode): the retried XVA import leaves no half VM, a completed one is not made twice', {
    timeout: 400_000,
  }, async () => {
    const c = await setUp('full', 1);
    expect((await c.stack.runJob(JOB)).status).toBe('success');
    await expectReplicas(c, 'full', 1);
    await c.stack.pool('main').control.writeRandomBlocks(c.app.disks[0].uuid, { count: 2, seed: 'dr kill' });
    const { report, atKill } = await runKilledMidImport(c, 'import', 1 << 20);
    // The broken XVA import made no VM; the older replica is kept until the new one is complete.
    expect(atKill).toEqual({ complete: 1, halfVms: 0, importingVdis: 0, orphanVdis: 0 });
    expect(vmReport(report, 'app').status, pretty(report)).toBe('success');
    await expectReplicas(c, 'full', 1);
    // Killed once XAPI had completed the import, before the export recorded it (reading the new
    // VM's uuid): the retried export takes that import (its named task) instead of a second one.
    await c.stack.pool('main').control.writeRandomBlocks(c.app.disks[0].uuid, { count: 2, seed: 'dr done' });
    const done = await runKilledInCall(c, 'VM.get_uuid');
    expect(done.atKill).toEqual({ complete: 1, halfVms: 1, importingVdis: 0, orphanVdis: 0 });
    expect(vmReport(done.report, 'app').status, pretty(done.report)).toBe('success');
    await expectReplicas(c, 'full', 1);
    expect((await replicasOf(c.stack, 'dr', c.app.uuid, JOB)).map((r) => r.vm.uuid)).toEqual(done.halfVms);
  });
});
