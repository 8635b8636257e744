// What every durability and fault test checks after a run: the VM's folder on the remote holds only
// complete backups (no temporary, state or lock file), each kept backup's chains rebuilt by qemu-img
// equal the disk at its snapshot, and the job leaves exactly the snapshots it should on the pool.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import type { RunReport, StepReport } from '../../core/run-report';
import { type BackupStack, chainToRaw, readAll } from '../helpers/backup-stack';
import { chainUpTo, filesUnder, listJson, readBackup } from '../helpers/remote-files';

export { dailySchedule, random } from '../helpers/scenarios';

/** The snapshots the simulator holds for this job and VM (by XO's other_config keys). */
export async function jobSnapshotsOf(stack: BackupStack, vmUuid: string, jobId: string) {
  return (await stack.pool().control.snapshots()).filter(
    (s) => s.other_config['xo:backup:vm'] === vmUuid && s.other_config['xo:backup:job'] === jobId,
  );
}

/** Every snapshot of the VM, labelled by a job or not (a leaked temporary one has no job key yet). */
export async function allSnapshotsOf(stack: BackupStack, vmUuid: string) {
  return (await stack.pool().control.snapshots()).filter((s) => s.snapshot_of_uuid === vmUuid);
}

export function vmDir(stack: BackupStack, remoteId: string, vmUuid: string): string {
  return path.join(stack.remoteDir(remoteId), 'xo-vm-backups', vmUuid);
}

/** Names under the VM folder (recursively) that start with a dot: temporary, merge state, probe. */
export async function hiddenFiles(stack: BackupStack, remoteId: string, vmUuid: string): Promise<string[]> {
  const dir = vmDir(stack, remoteId, vmUuid);
  const files = await filesUnder(dir).catch(() => [] as string[]);
  return files.filter((f) => f.split('/').some((part) => part.startsWith('.')));
}

/** The lock file of the VM on a remote, and any other hidden file at the remote's top levels. */
export async function leftoversBesideVm(stack: BackupStack, remoteId: string): Promise<string[]> {
  const root = stack.remoteDir(remoteId);
  const top = (await readdir(root).catch(() => [] as string[])).filter((n) => n.startsWith('.'));
  const backups = (await readdir(path.join(root, 'xo-vm-backups')).catch(() => [] as string[])).filter(
    (n) => n.startsWith('.') || n.endsWith('.xcpb-lock.json') || n.endsWith('.lock'),
  );
  return [...top, ...backups.map((n) => `xo-vm-backups/${n}`)];
}

/**
 * Disk bytes at each backup, keyed `<remote>/<vm>/<ts>/<liveVdi>`, read from the snapshot while it still
 * exists, so older backups can be judged after their snapshot is gone.
 */
export class Truths {
  private readonly bytes = new Map<string, Buffer>();

  constructor(private readonly stack: BackupStack) {}

  /**
   * Checks every disk of the VM's newest backup on `remoteId` against its snapshot (which must still
   * exist) and records those bytes. Returns the backup.
   */
  async checkNewest(vmUuid: string, jobId: string, remoteId = 'nas') {
    const remote = this.stack.remoteDir(remoteId);
    const newest = (await listJson(remote, vmUuid)).at(-1);
    expect(newest, `a backup of ${vmUuid} on ${remoteId}`).toBeDefined();
    const backup = await readBackup(remote, vmUuid, newest!.replace('.json', ''));
    expect(backup.metadata).toMatchObject({ mode: 'delta', jobId, vm: { uuid: vmUuid } });
    expect(backup.disks.length).toBeGreaterThan(0);
    for (const disk of backup.disks) {
      const chain = await chainUpTo(remote, vmUuid, jobId, disk.liveVdi, backup.ts);
      const truth = await readAll(await this.stack.pool().control.readVdi(disk.snapshotVdi));
      this.bytes.set(`${remoteId}/${vmUuid}/${backup.ts}/${disk.liveVdi}`, truth);
      const judged = await chainToRaw(chain);
      expect(
        judged.equals(truth),
        `${remoteId} ${backup.ts} ${disk.liveVdi}: chain ${chain.map((c) => path.basename(c))} rebuilt by qemu-img equals the snapshot`,
      ).toBe(true);
    }
    return backup;
  }

  /** Every backup of the VM on the remote still rebuilds the disk recorded for it. */
  async checkAll(vmUuid: string, jobId: string, remoteId = 'nas'): Promise<string[]> {
    const remote = this.stack.remoteDir(remoteId);
    const jsons = await listJson(remote, vmUuid);
    for (const json of jsons) {
      const backup = await readBackup(remote, vmUuid, json.replace('.json', ''));
      for (const disk of backup.disks) {
        const key = `${remoteId}/${vmUuid}/${backup.ts}/${disk.liveVdi}`;
        const truth = this.bytes.get(key);
        expect(truth, `bytes recorded for ${key}`).toBeDefined();
        const chain = await chainUpTo(remote, vmUuid, jobId, disk.liveVdi, backup.ts);
        expect(
          (await chainToRaw(chain)).equals(truth!),
          `${key}: chain ${chain.map((c) => path.basename(c))}`,
        ).toBe(true);
      }
    }
    return jsons.map((j) => j.replace('.json', ''));
  }
}

export function stepsOf(report: RunReport, vmName: string, name: string): StepReport[] {
  const vm = report.vms.find((v) => v.vmName === vmName);
  expect(vm, `${vmName} in the report`).toBeDefined();
  return vm!.steps.filter((s) => s.name === name);
}

/** Polls `check` until it returns a truthy value (bounded); returns that value. */
export async function waitFor<T>(what: string, check: () => Promise<T>, timeoutMs = 60_000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const pretty = (report: unknown) => JSON.stringify(report, null, 1);
