// A remote that becomes unwritable or vanishes: the run says so for that remote (step and reason),
// takes no snapshot it cannot use, and never touches the older backups there; with two remotes the
// other one still gets the backup and the VM fails for the broken target only. (The tests run as
// root, for whom chmod is no barrier: `chattr +i` makes a folder refuse new entries, even to root.)
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../core/run-report';
import { RUN_REPORTS_DIR } from '../../remotes/backup-paths';
import {
  allSnapshotsOf,
  hiddenFiles,
  jobSnapshotsOf,
  leftoversBesideVm,
  pretty,
  stepsOf,
  Truths,
  vmDir,
} from '../durability/checks';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { filesUnder, listJson } from '../helpers/remote-files';
import { disk, labScenario, labVm, tagJob } from '../helpers/scenarios';

const exec = promisify(execFile);
let stack: BackupStack;
let truths: Truths;
const immutable = new Set<string>();

async function chattr(flag: '+i' | '-i', dir: string): Promise<void> {
  await exec('chattr', [flag, dir]);
  if (flag === '+i') immutable.add(dir);
  else immutable.delete(dir);
}

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: labScenario({
      password: 'remote-faults-pw',
      vms: [
        labVm('solo', { tags: ['solo'], disks: [disk('solo root', '8MiB', 21, 3)] }),
        labVm('duo', { tags: ['duo'], disks: [disk('duo root', '8MiB', 22, 3)] }),
      ],
    }),
    remotes: ['nas', 'usb'],
    jobs: [tagJob('single', 'solo'), tagJob('pair', 'duo', { remotes: ['nas', 'usb'] })],
  });
  truths = new Truths(stack);
});
afterAll(async () => {
  for (const dir of immutable) await exec('chattr', ['-i', dir]).catch(() => {});
  await stack?.close();
});

/**
 * Every backup file under a remote with a hash of its content (run reports aside: every run, failed
 * or not, stores its report beside the backups, and they are not backups).
 */
async function contentOf(remoteId: string): Promise<Record<string, string>> {
  const root = stack.remoteDir(remoteId);
  const out: Record<string, string> = {};
  for (const f of await filesUnder(root)) {
    if (f.startsWith(`${RUN_REPORTS_DIR}/`)) continue;
    out[f] = createHash('sha256')
      .update(await readFile(path.join(root, f)))
      .digest('hex');
  }
  return out;
}

async function runChanged(jobId: string, vmName: string): Promise<{ report: RunReport; snapshots: number }> {
  const vm = await stack.vm(vmName);
  await stack
    .pool()
    .control.writeRandomBlocks(vm.disks[0].uuid, { count: 1, seed: `${jobId} ${Date.now()}` });
  await stack.pool().control.resetStats();
  const report = await stack.runJob(jobId);
  return { report, snapshots: (await stack.pool().control.stats()).calls['VM.snapshot'] ?? 0 };
}

describe('a remote that becomes unwritable', () => {
  it('the only remote refuses writes: the VM fails naming the remote and why; older backups intact', async () => {
    const solo = await stack.vm('solo');
    const first = await stack.runJob('single');
    expect(first.status, pretty(first)).toBe('success');
    await truths.checkNewest(solo.uuid, 'single');
    const [base] = await jobSnapshotsOf(stack, solo.uuid, 'single');
    const before = await contentOf('nas');

    await chattr('+i', stack.remoteDir('nas'));
    let failed: Awaited<ReturnType<typeof runChanged>>;
    try {
      failed = await runChanged('single', 'solo');
    } finally {
      await chattr('-i', stack.remoteDir('nas'));
    }
    const { report, snapshots } = failed;
    expect(report.status, pretty(report)).toBe('failure');
    const vm = report.vms[0];
    expect(vm.status).toBe('failure');
    expect(vm.error?.message).toMatch(/no target remote is writable/);
    expect(stepsOf(report, 'solo', 'remotes')[0].detail).toMatch(/^nas: .*(EPERM|not permitted)/i);
    expect(stepsOf(report, 'solo', 'remotes')[0]).toMatchObject({
      status: 'failure',
      error: { code: 'REMOTE_UNAVAILABLE', message: expect.stringMatching(/^nas: /) },
    });
    const transfer = stepsOf(report, 'solo', 'transfer');
    expect(transfer).toEqual([
      expect.objectContaining({
        target: 'nas',
        status: 'failure',
        error: expect.objectContaining({
          code: 'REMOTE_UNAVAILABLE',
          message: expect.stringMatching(/EPERM|not permitted/i),
        }),
      }),
    ]);
    expect(snapshots, 'no snapshot taken for nowhere').toBe(0);
    expect((await allSnapshotsOf(stack, solo.uuid)).map((s) => s.uuid)).toEqual([base.uuid]);
    expect(await contentOf('nas'), 'the older backups untouched').toEqual(before);
    await truths.checkAll(solo.uuid, 'single');

    // Writable again: the next run is a delta on the same base.
    const next = await runChanged('single', 'solo');
    expect(next.report.status, pretty(next.report)).toBe('success');
    expect(stepsOf(next.report, 'solo', 'export')[0].detail).toMatch(/^delta from/);
    await truths.checkNewest(solo.uuid, 'single');
    await truths.checkAll(solo.uuid, 'single');
    expect(await hiddenFiles(stack, 'nas', solo.uuid)).toEqual([]);
  });

  it('one of two remotes refuses the disk: the other gets the backup, the VM fails for that target only', async () => {
    const duo = await stack.vm('duo');
    const first = await stack.runJob('pair');
    expect(first.status, pretty(first)).toBe('success');
    for (const r of ['nas', 'usb']) await truths.checkNewest(duo.uuid, 'pair', r);
    const usbBefore = await contentOf('usb');
    const usbJsons = await listJson(stack.remoteDir('usb'), duo.uuid);

    // The remote passes its write probe but the chain folder takes no new file (a quota, a bad disk).
    const chain = path.join(vmDir(stack, 'usb', duo.uuid), 'vdis', 'pair', duo.disks[0].uuid);
    await chattr('+i', chain);
    let run: Awaited<ReturnType<typeof runChanged>>;
    try {
      run = await runChanged('pair', 'duo');
    } finally {
      await chattr('-i', chain);
    }
    const { report, snapshots } = run;
    expect(report.status, pretty(report)).toBe('failure');
    expect(snapshots).toBe(1);
    const transfers = stepsOf(report, 'duo', 'transfer');
    expect(transfers.find((t) => t.target === 'nas')?.status, pretty(report)).toBe('success');
    expect(
      transfers.find((t) => t.target === 'usb'),
      pretty(report),
    ).toMatchObject({
      status: 'failure',
      error: { code: 'REMOTE_WRITE_FAILED', message: expect.stringMatching(/EPERM|not permitted/i) },
    });
    const failedSteps = report.vms[0].steps.filter((s) => s.status === 'failure');
    expect(
      failedSteps.map((s) => `${s.name}:${s.target}`),
      'failed for usb only',
    ).toEqual(['transfer:usb']);
    expect(stepsOf(report, 'duo', 'metadata')[0].status).toBe('success');
    expect(stepsOf(report, 'duo', 'retention').map((s) => s.target)).toEqual(['nas']);
    // nas has the new backup, exact; usb has exactly what it had.
    await truths.checkNewest(duo.uuid, 'pair', 'nas');
    await truths.checkAll(duo.uuid, 'pair', 'nas');
    expect(await contentOf('usb')).toEqual(usbBefore);
    expect(await listJson(stack.remoteDir('usb'), duo.uuid)).toEqual(usbJsons);
    expect(await jobSnapshotsOf(stack, duo.uuid, 'pair')).toHaveLength(1);
    expect(await hiddenFiles(stack, 'nas', duo.uuid)).toEqual([]);
    expect(await hiddenFiles(stack, 'usb', duo.uuid)).toEqual([]);
  });

  it('one of two remotes vanishes: the other gets the backup; when it is back, its backups are intact', async () => {
    const duo = await stack.vm('duo');
    const usb = stack.remoteDir('usb');
    const usbBefore = await contentOf('usb');
    const nasJsons = await listJson(stack.remoteDir('nas'), duo.uuid);
    await rename(usb, `${usb}.gone`);
    let run: Awaited<ReturnType<typeof runChanged>>;
    try {
      run = await runChanged('pair', 'duo');
    } finally {
      await rename(`${usb}.gone`, usb);
    }
    const { report } = run;
    expect(report.status, pretty(report)).toBe('failure');
    expect(stepsOf(report, 'duo', 'remotes')[0].detail).toMatch(
      /^nas: ready; usb: .*(missing|ENOENT|no such file)/i,
    );
    const transfers = stepsOf(report, 'duo', 'transfer');
    expect(transfers.find((t) => t.target === 'usb')).toMatchObject({
      status: 'failure',
      error: { code: 'REMOTE_UNAVAILABLE' },
    });
    expect(transfers.find((t) => t.target === 'nas')?.status).toBe('success');
    expect(await listJson(stack.remoteDir('nas'), duo.uuid)).toHaveLength(nasJsons.length + 1);
    await truths.checkNewest(duo.uuid, 'pair', 'nas');
    expect(await contentOf('usb'), 'the vanished remote was not written to').toEqual(usbBefore);
    await truths.checkAll(duo.uuid, 'pair', 'usb');

    // Both back: the next run lands on both, usb's chain rebuilt from a base it still has.
    const next = await runChanged('pair', 'duo');
    expect(next.report.status, pretty(next.report)).toBe('success');
    for (const r of ['nas', 'usb']) {
      await truths.checkNewest(duo.uuid, 'pair', r);
      await truths.checkAll(duo.uuid, 'pair', r);
      expect(await hiddenFiles(stack, r, duo.uuid)).toEqual([]);
      expect(await leftoversBesideVm(stack, r)).toEqual([]);
    }
    expect(await jobSnapshotsOf(stack, duo.uuid, 'pair')).toHaveLength(1);
  });
});
