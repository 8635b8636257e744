// The disk of the remote fills up in the middle of a write (a real filesystem: a small tmpfs mounted
// on the remote's folder; the tests run as root). The run fails cleanly for that VM, naming the
// reason; no partial file is left visible, no snapshot leaks, the older backups stay byte-exact;
// with space again, the next run is a delta on the same base.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allSnapshotsOf,
  hiddenFiles,
  jobSnapshotsOf,
  leftoversBesideVm,
  pretty,
  stepsOf,
  Truths,
} from '../durability/checks';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { disk, labScenario, labVm, tagJob } from '../helpers/scenarios';

const exec = promisify(execFile);
let stack: BackupStack;
let truths: Truths;
let mounted: string | undefined;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: labScenario({
      password: 'remote-full-pw',
      srSize: '1GiB',
      vms: [labVm('app', { tags: ['prod'], disks: [disk('root', '16MiB', 31, 4)] })],
    }),
    jobs: [tagJob('nightly', 'prod')],
  });
  truths = new Truths(stack);
  // Room for the first backup (8 MiB of data) and not for a second one as big.
  mounted = stack.remoteDir('nas');
  await exec('mount', ['-t', 'tmpfs', '-o', 'size=11m', 'xcpb-full-remote', mounted]);
});
afterAll(async () => {
  if (mounted) await exec('umount', [mounted]).catch(() => {});
  await stack?.close();
});

describe('the remote disk fills up mid-write', () => {
  it('the VM fails naming the reason; nothing partial stays; older backups intact; then it goes on', async () => {
    const vm = await stack.vm('app');
    const first = await stack.runJob('nightly');
    expect(first.status, pretty(first)).toBe('success');
    await truths.checkNewest(vm.uuid, 'nightly');
    const [base] = await jobSnapshotsOf(stack, vm.uuid, 'nightly');

    await stack.pool().control.writeRandomBlocks(vm.disks[0].uuid, { count: 4, seed: 'fill the remote' });
    const full = await stack.runJob('nightly');
    expect(full.status, pretty(full)).toBe('failure');
    const transfer = stepsOf(full, 'app', 'transfer').find((s) => s.status === 'failure');
    expect(transfer?.error?.message, pretty(full)).toMatch(/ENOSPC|no space|out of space/i);
    const partial = await hiddenFiles(stack, 'nas', vm.uuid);
    const leaked = (await allSnapshotsOf(stack, vm.uuid)).filter((s) => s.uuid !== base.uuid);
    expect(partial).toEqual([]);
    expect(await leftoversBesideVm(stack, 'nas')).toEqual([]);
    expect(leaked).toEqual([]);
    const checked = await truths.checkAll(vm.uuid, 'nightly'); // asserts each chain byte-exact

    await exec('mount', ['-o', 'remount,size=64m', mounted!]);
    const next = await stack.runJob('nightly');
    expect(next.status, pretty(next)).toBe('success');
    expect(stepsOf(next, 'app', 'export')[0].detail).toMatch(/^delta from/);
    await truths.checkNewest(vm.uuid, 'nightly');
    await truths.checkAll(vm.uuid, 'nightly');
    console.log(
      `chaos remote-full: trials 1, runs failed cleanly 1, leaked snapshots ${leaked.length}, partial files ${partial.length}, ` +
        `chains checked ${checked.length}, mismatched 0`,
    );
  });
});
