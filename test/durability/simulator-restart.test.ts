// The XAPI side dies mid-export: the simulator process is killed (kill -9) while a disk streams, and
// started again on its data folder (its tasks in flight fail, as a toolstack restart does). The
// export is retried against the restarted pool: the run completes, the snapshot is found again (not
// taken twice, not leaked), no partial file stays, every chain rebuilt by qemu-img is byte-exact.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { repoRoot } from '../helpers/cli';
import { disk, labScenario, labVm, tagJob } from '../helpers/scenarios';
import {
  allSnapshotsOf,
  dailySchedule,
  hiddenFiles,
  jobSnapshotsOf,
  leftoversBesideVm,
  pretty,
  stepsOf,
  Truths,
  vmDir,
  waitFor,
} from './checks';

const JOB = 'nightly';
const scenario = labScenario({
  password: 'sim-restart-pw',
  srSize: '2GiB',
  vms: [labVm('app', { tags: ['prod'], disks: [disk('app root', '24MiB', 41, 12)] })],
});
let stack: BackupStack;
let sim: ChildProcess | undefined;

/** `xcpb sim` as its own process, on the stack's data folder and port. */
async function startSimProcess(port: number): Promise<ChildProcess> {
  const file = path.join(stack.dir, 'scenario.json');
  await writeFile(file, JSON.stringify(scenario));
  const child = spawn(
    process.execPath,
    [
      path.join(repoRoot, 'bin/xcpb.mjs'),
      'sim',
      '--scenario',
      file,
      '--port',
      String(port),
      '--data-dir',
      path.join(stack.dir, 'sim'),
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('pool lab:') && resolve());
    child.once('exit', (code) => reject(new Error(`xcpb sim exited with ${code}`)));
  });
  return child;
}

/**
 * Snapshots of the VM in the simulator's saved state. XAPI commits a snapshot to its database before
 * the call returns; the simulator saves shortly after (debounced), so a kill must wait for the save.
 */
async function savedSnapshotsOf(vmUuid: string): Promise<number> {
  const file = path.join(stack.dir, 'sim', 'lab', 'state.json');
  const state = JSON.parse(await readFile(file, 'utf8').catch(() => '{}'));
  const vms = Object.entries(state?.db?.tables?.VM ?? {}) as [string, Record<string, unknown>][];
  const ref = vms.find(([, r]) => r.uuid === vmUuid)?.[0];
  return vms.filter(([, r]) => r.is_a_snapshot === true && r.snapshot_of === ref).length;
}

async function killSim(): Promise<void> {
  const child = sim!;
  sim = undefined;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

beforeAll(async () => {
  stack = await startBackupStack({
    scenario,
    jobs: [tagJob(JOB, 'prod', { schedules: dailySchedule(3) })],
  });
});
afterAll(async () => {
  if (sim) await killSim();
  await stack?.close();
});

describe('kill -9 of the XAPI side (the simulator process) mid-export', () => {
  it('the export is retried on the restarted pool; the run completes clean', {
    timeout: 240_000,
  }, async () => {
    const truths = new Truths(stack);
    const vm = await stack.vm('app');
    const first = await stack.runJob(JOB);
    expect(first.status, pretty(first)).toBe('success');
    await truths.checkNewest(vm.uuid, JOB);

    // From here the pool lives in its own process, on the same data folder and port.
    const port = Number(new URL(stack.pool().url).port);
    await stack.sim.close();
    sim = await startSimProcess(port);
    const control = stack.pool().control; // HTTP: talks to the process
    await control.writeRandomBlocks(vm.disks[0].uuid, { count: 6, seed: 'before the crash' });
    await control.throttle({ bytesPerSecond: 2 << 20 });
    const snapshotsBefore = await savedSnapshotsOf(vm.uuid);
    const handle = await stack.startJob(JOB);
    const chainDir = path.join(vmDir(stack, 'nas', vm.uuid), 'vdis', JOB, vm.disks[0].uuid);
    await waitFor(
      'the export under way',
      async () =>
        (await control.stats()).current.export_raw_vdi > 0 &&
        (await readdir(chainDir).catch(() => [] as string[])).some((n) => n.includes('.tmp-')),
    );
    await waitFor(
      'the new snapshot saved by the pool',
      async () => (await savedSnapshotsOf(vm.uuid)) > snapshotsBefore,
    );
    await killSim();
    await new Promise((r) => setTimeout(r, 1_000));
    sim = await startSimProcess(port); // faults (the throttle) are gone with the process

    const report = await handle.result();
    expect(report.status, pretty(report)).toBe('success');
    expect(stepsOf(report, 'app', 'export')[0].detail).toMatch(/^delta from/);
    await truths.checkNewest(vm.uuid, JOB);
    const checked = await truths.checkAll(vm.uuid, JOB); // asserts each chain byte-exact
    const snapshots = await allSnapshotsOf(stack, vm.uuid);
    const partial = await hiddenFiles(stack, 'nas', vm.uuid);
    expect(await jobSnapshotsOf(stack, vm.uuid, JOB)).toHaveLength(1);
    expect(snapshots).toHaveLength(1);
    expect(partial).toEqual([]);
    expect(await leftoversBesideVm(stack, 'nas')).toEqual([]);
    console.log(
      `chaos simulator-kill: trials 1, runs completed 1, export attempts ${stepsOf(report, 'app', 'export').length}, ` +
        `leaked snapshots ${snapshots.length - 1}, partial files ${partial.length}, chains checked ${checked.length}, mismatched 0`,
    );
  });
});
