// The VM lock in real runs: kept alive by its keeper across an export much longer than its stale
// period (so another run of the same VM is refused, not let in), and refused while Xen Orchestra
// holds the VM folder (XO's own lock, proper-lockfile's defaults, played by the real library).
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hiddenFiles, leftoversBesideVm, pretty, stepsOf, vmDir, waitFor } from '../durability/checks';
import { type BackupStack, chainToRaw, readAll, startBackupStack } from '../helpers/backup-stack';
import { chainUpTo, listJson, readBackup } from '../helpers/remote-files';
import { disk, labScenario, labVm, tagJob } from '../helpers/scenarios';

const MiB = 1 << 20;
const STALE_MS = 1_500; // refreshed every 300 ms by the keeper
let stack: BackupStack;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: labScenario({
      password: 'lock-test-secret',
      srSize: '2GiB',
      vms: [labVm('app', { tags: ['prod'], disks: [disk('root', '16MiB', 3, 4)] })],
    }),
    jobs: [tagJob('first', 'prod'), tagJob('second', 'prod')],
    vmLockStaleMs: STALE_MS,
  });
});
afterAll(() => stack?.close());

describe('VM lock in runs', () => {
  it('a lock held across an export longer than its stale period is never taken by another run', async () => {
    const vm = await stack.vm('app');
    // 8 MiB of data: ~16 s of export, lifted once the second run is refused (however slow the machine)
    await stack.pool().control.throttle({ bytesPerSecond: MiB / 2 });
    const first = await stack.startJob('first');
    await waitFor(
      'the export to be streaming',
      async () => (await hiddenFiles(stack, 'nas', vm.uuid)).length > 0,
      60_000,
    );
    await new Promise((r) => setTimeout(r, 2 * STALE_MS));
    const second = await stack.runJob('second');
    const refused = stepsOf(second, 'app', 'transfer').find((s) => s.status === 'failure');
    expect(refused?.error?.message, pretty(second)).toMatch(new RegExp(`locked by "${first.workflowId}"`));
    await stack.pool().control.throttle({ bytesPerSecond: 0 });
    const report = await first.result();
    expect(report.status, pretty(report)).toBe('success');
    // the first run's backup is whole, and no lock of either run is left
    const ts = (await listJson(stack.remoteDir('nas'), vm.uuid)).at(-1)!.replace('.json', '');
    const backup = await readBackup(stack.remoteDir('nas'), vm.uuid, ts);
    for (const disk of backup.disks) {
      const chain = await chainUpTo(stack.remoteDir('nas'), vm.uuid, 'first', disk.liveVdi, ts);
      expect(
        (await chainToRaw(chain)).equals(await readAll(await stack.pool().control.readVdi(disk.snapshotVdi))),
      ).toBe(true);
    }
    expect(await leftoversBesideVm(stack, 'nas')).toEqual([]);
  });

  it('a VM whose folder Xen Orchestra holds is refused with a reason naming it; once XO is done, it is backed up', async () => {
    const vm = await stack.vm('app');
    const release = await lockfile.lock(vmDir(stack, 'nas', vm.uuid));
    try {
      const report = await stack.runJob('second');
      const refused = stepsOf(report, 'app', 'transfer').find((s) => s.status === 'failure');
      expect(refused?.error?.message, pretty(report)).toMatch(/locked by Xen Orchestra/);
      expect(report.vms[0].status).toBe('failure');
    } finally {
      await release();
    }
    const report = await stack.runJob('second');
    expect(report.status, pretty(report)).toBe('success');
    expect(await leftoversBesideVm(stack, 'nas')).toEqual([]);
    expect(path.basename(vmDir(stack, 'nas', vm.uuid))).toBe(vm.uuid);
  });
});
