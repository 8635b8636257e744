// 20 kill -9 of the worker process at seeded random moments while runs back up, merge (retention 2:
// from the third run on, every run merges), restore and health-check (each run restores its backup,
// starts it, waits for its agent, deletes it). A new worker is started after each kill. After the
// storm: every run ended (success), no snapshot or health-check VM leaked, no partial file is left,
// every kept chain rebuilt by qemu-img is byte-exact. The figures are printed.
// XCPB_CHAOS_SEED replays a given sequence of kill moments.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport, VmReport } from '../../core/run-report';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { stopAllWorkerProcesses, WorkerProcess } from '../helpers/worker-process';
import {
  allSnapshotsOf,
  hiddenFiles,
  jobSnapshotsOf,
  leftoversBesideVm,
  pretty,
  random,
  Truths,
} from './checks';

const KILLS = 20;
const SEED = Number(process.env.XCPB_CHAOS_SEED ?? 20261129);
const JOB = 'nightly';
let stack: BackupStack;
let worker: WorkerProcess;

/** mulberry32: a small seeded PRNG, so a failing sequence of kill moments can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'kill-storm-pw' }],
          srs: [
            { id: 'local', name: 'Local', size: '4GiB', default: true },
            { id: 'spare', name: 'Spare', size: '4GiB' },
          ],
          networks: [{ id: 'net0', name: 'Network 0' }],
          vms: ['a', 'b'].map((n, i) => ({
            name: n,
            tags: ['prod'],
            power: 'Running' as const,
            networks: ['net0'],
            disks: [{ name: `${n} root`, size: '12MiB', content: random(60 + i, 4) }],
          })),
        },
      ],
    },
    jobs: [
      {
        id: JOB,
        mode: 'delta',
        vms: { tags: ['prod'] },
        remotes: ['nas'],
        schedules: [
          {
            id: 'daily',
            cron: '0 3 * * *',
            retention: { remote: 2, snapshot: 1 },
            healthCheck: { sr: 'Spare', timeout: '10m' },
          },
        ],
      },
    ],
    workers: false,
  });
  worker = await WorkerProcess.start(stack);
}, 180_000);
afterAll(async () => {
  await stopAllWorkerProcesses();
  await stack?.close();
});

/** VMs that are not snapshots: the job's VMs, dom0, and any health-check VM left behind. */
async function liveVmCount(): Promise<number> {
  const xapi = await stack.xapi();
  try {
    const all = await xapi.getAllRecords<{ is_a_snapshot: boolean }>('VM');
    return Object.values(all).filter((v) => !v.is_a_snapshot).length;
  } finally {
    await xapi.logout();
  }
}

/** What the run is doing now: the running step of each VM (`<vm>:<step>`). */
async function phaseOf(runId: string | undefined, vmUuids: string[]): Promise<string> {
  if (!runId) return 'between runs';
  const phases: string[] = [];
  for (const [i, uuid] of vmUuids.entries()) {
    const report = await stack.client.workflow
      .getHandle(`${runId}/vm:${uuid}`)
      .query<VmReport>('report')
      .catch(() => undefined);
    const running = report?.steps.filter((s) => s.status === 'running').map((s) => s.name);
    phases.push(
      `${'ab'[i]}:${running?.length ? running.join('+') : report ? 'between steps' : 'not started'}`,
    );
  }
  return phases.join(' ');
}

describe('a storm of kill -9 of the worker', () => {
  it(`${KILLS} kills at seeded random moments across backup, merge, restore and health check`, {
    timeout: 900_000,
  }, async () => {
    const random01 = prng(SEED);
    const truths = new Truths(stack);
    const vms = [await stack.vm('a'), await stack.vm('b')];
    const vmCountBefore = await liveVmCount();
    const reports: RunReport[] = [];
    const kills: string[] = [];
    let current: string | undefined;
    let stormOver = false;

    const workload = (async () => {
      for (let n = 0; !stormOver || n < 3; n++) {
        for (const vm of vms) {
          await stack
            .pool()
            .control.writeRandomBlocks(vm.disks[0].uuid, { count: 1, seed: `storm ${n} ${vm.uuid}` });
        }
        const handle = await stack.startJob(JOB);
        current = handle.workflowId;
        const report = await handle.result();
        current = undefined;
        reports.push(report);
        expect(report.status, pretty(report)).toBe('success');
        for (const vm of vms) await truths.checkNewest(vm.uuid, JOB);
      }
    })();
    const killer = (async () => {
      for (let k = 0; k < KILLS; k++) {
        await new Promise((r) => setTimeout(r, 1_000 + random01() * 3_000));
        kills.push(
          await phaseOf(
            current,
            vms.map((v) => v.uuid),
          ),
        );
        await worker.kill();
        worker = await WorkerProcess.start(stack);
      }
      stormOver = true;
    })();
    await Promise.all([killer, workload]);

    const leakedSnapshots: string[] = [];
    const partial: string[] = [];
    let checked = 0;
    for (const vm of vms) {
      const jobSnaps = await jobSnapshotsOf(stack, vm.uuid, JOB);
      const all = await allSnapshotsOf(stack, vm.uuid);
      leakedSnapshots.push(
        ...all.filter((s) => !jobSnaps.slice(-1).some((j) => j.uuid === s.uuid)).map((s) => s.uuid),
      );
      partial.push(...(await hiddenFiles(stack, 'nas', vm.uuid)));
      checked += (await truths.checkAll(vm.uuid, JOB)).length; // asserts each chain byte-exact
    }
    const vmCountAfter = await liveVmCount();
    const merges = reports.flatMap((r) =>
      r.vms.flatMap((v) => v.steps.filter((s) => s.name === 'retention')),
    ).length;
    const checks = reports.flatMap((r) =>
      r.vms.flatMap((v) => v.steps.filter((s) => s.name === 'healthCheck' && s.status === 'success')),
    ).length;
    console.log(
      `chaos kill-storm (seed ${SEED}): trials ${kills.length} kills, runs ${reports.length} (all success), ` +
        `retention steps ${merges}, health checks passed ${checks}, leaked snapshots ${leakedSnapshots.length}, ` +
        `leaked VMs ${vmCountAfter - vmCountBefore}, partial files ${partial.length}, chains checked ${checked}, mismatched 0\n` +
        kills.map((p, i) => `  kill ${i + 1}: ${p}`).join('\n'),
    );
    expect(kills).toHaveLength(KILLS);
    expect(leakedSnapshots).toEqual([]);
    expect(partial).toEqual([]);
    expect(vmCountAfter).toBe(vmCountBefore);
    expect(await leftoversBesideVm(stack, 'nas')).toEqual([]);
    expect(checks).toBe(reports.length * vms.length);
  });
});
