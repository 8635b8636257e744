// The remote freezes in the middle of a write (a real FUSE mount, bindfs, whose process is stopped
// with SIGSTOP: every file operation on it hangs) and comes back later (SIGCONT). The export's stall
// timeout fires: the frozen target is dropped, naming the stall, instead of holding the run for
// hours; once the remote is back nothing partial stays, no snapshot leaks, the older backups are
// byte-exact, and the next run is a delta on the same base. (The tests run as root.)
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReportOf } from '../../client/run-result';
import type { VmReport } from '../../core/run-report';
import {
  allSnapshotsOf,
  hiddenFiles,
  jobSnapshotsOf,
  leftoversBesideVm,
  pretty,
  stepsOf,
  Truths,
  vmDir,
  waitFor,
} from '../durability/checks';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { disk, labScenario, labVm, tagJob } from '../helpers/scenarios';

const exec = promisify(execFile);
const STALL_MS = 2_000;
let stack: BackupStack;
let bindfs: ChildProcess | undefined;
let mountpoint: string;

const mounted = async () =>
  (await readFile('/proc/mounts', 'utf8')).split('\n').some((l) => l.split(' ')[1] === mountpoint);

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: labScenario({
      password: 'frozen-remote-pw',
      srSize: '1GiB',
      vms: [labVm('app', { tags: ['prod'], disks: [disk('root', '16MiB', 51, 4)] })],
    }),
    jobs: [tagJob('nightly', 'prod')],
    transferStallMs: STALL_MS,
  });
  mountpoint = stack.remoteDir('nas');
  const backing = path.join(stack.dir, 'nas-backing');
  await mkdir(backing);
  bindfs = spawn('bindfs', ['-f', backing, mountpoint], { stdio: 'inherit' });
  await waitFor('the FUSE mount', mounted, 20_000);
});
afterAll(async () => {
  if (bindfs) {
    bindfs.kill('SIGCONT');
    await exec('fusermount', ['-u', mountpoint]).catch(() =>
      exec('umount', ['-l', mountpoint]).catch(() => {}),
    );
    bindfs.kill('SIGKILL');
  }
  await stack?.close();
});

describe('the remote freezes mid-write, then comes back', () => {
  it('the stall timeout drops it, naming why; nothing partial stays; the next run goes on', async () => {
    const truths = new Truths(stack);
    const vm = await stack.vm('app');
    const first = await stack.runJob('nightly');
    expect(first.status, pretty(first)).toBe('success');
    await truths.checkNewest(vm.uuid, 'nightly');
    const [base] = await jobSnapshotsOf(stack, vm.uuid, 'nightly');

    const control = stack.pool().control;
    await control.writeRandomBlocks(vm.disks[0].uuid, { count: 4, seed: 'frozen' });
    await control.throttle({ bytesPerSecond: 2 << 20 });
    const handle = await stack.startJob('nightly');
    const chainDir = path.join(vmDir(stack, 'nas', vm.uuid), 'vdis', 'nightly', vm.disks[0].uuid);
    await waitFor('the write under way', async () =>
      (await readdir(chainDir).catch(() => [] as string[])).some((n) => n.includes('.tmp-')),
    );
    bindfs!.kill('SIGSTOP');
    const frozenAt = Date.now();
    let stalled: string | undefined;
    try {
      const child = stack.client.workflow.getHandle(`${handle.workflowId}/vm:${vm.uuid}`);
      stalled = await waitFor(
        'the stall timeout',
        async () =>
          (await child.query<VmReport>('report')).steps.find(
            (s) => s.name === 'transfer' && s.status === 'failure',
          )?.error?.message,
        60_000,
        200,
      );
    } finally {
      bindfs!.kill('SIGCONT');
    }
    const frozenFor = Date.now() - frozenAt;
    await control.throttle({ bytesPerSecond: 0 });
    expect(stalled).toMatch(/remote "nas": took no data for 2 s \(unreachable or frozen\)/);
    const report = await runReportOf(handle); // a failed run ends Failed, with its report
    expect(report.status, pretty(report)).toBe('failure');
    expect(stepsOf(report, 'app', 'metadata')).toEqual([]); // no backup claimed
    await waitFor(
      'the dropped temporary file removed',
      async () => (await hiddenFiles(stack, 'nas', vm.uuid)).length === 0,
      30_000,
    );
    // (the control API's first answer may come late: the test process's file I/O was held up too)
    const snapshots = await waitFor('the snapshots listed', () =>
      allSnapshotsOf(stack, vm.uuid).catch(() => undefined),
    );
    const leaked = snapshots.filter((s) => s.uuid !== base.uuid);
    expect(leaked).toEqual([]);
    expect(await leftoversBesideVm(stack, 'nas')).toEqual([]);
    const checked = await truths.checkAll(vm.uuid, 'nightly'); // asserts each chain byte-exact

    const next = await stack.runJob('nightly');
    expect(next.status, pretty(next)).toBe('success');
    expect(stepsOf(next, 'app', 'export')[0].detail).toMatch(/^delta from/);
    await truths.checkNewest(vm.uuid, 'nightly');
    await truths.checkAll(vm.uuid, 'nightly');
    console.log(
      `chaos remote-frozen: trials 1, frozen ${frozenFor} ms, stall timeouts fired 1 (after ${STALL_MS} ms), ` +
        `leaked snapshots ${leaked.length}, partial files 0, chains checked ${checked.length}, mismatched 0`,
    );
  });
});
