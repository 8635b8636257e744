// Test fixtures for repository tests: a temp local remote, backup metadata as XO writes it, and a
// stand-in VHD format (JSON: identity, parent name, blocks) with a merge that behaves like the real
// one (parent takes the child's blocks and identity, then the child's name).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import nodePath from 'node:path';
import type { BackupMetadata } from '../../remotes/backup-metadata';
import { backupPaths } from '../../remotes/backup-paths';
import { createLocalRemote } from '../../remotes/local';
import { dirnameOf, type Remote } from '../../remotes/remote';

export const VM = '0f1e2d3c-aaaa-4bbb-8ccc-000000000001';
export const JOB = 'job-1';
export const DAY = 86_400_000;
export const T0 = Date.UTC(2026, 10, 1, 3, 0);

export async function tempRemote(
  id = 'nas',
): Promise<{ remote: Remote; root: string; cleanup(): Promise<void> }> {
  const root = await mkdtemp(nodePath.join(os.tmpdir(), 'xcpb-repo-'));
  return {
    remote: createLocalRemote({ id, root }),
    root,
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

export interface FakeVhd {
  uuid: string;
  /** basename of the parent in the same folder, or null for a full disk */
  parent: string | null;
  blocks: Record<string, string>;
}

export const fakeVhd = (vhd: FakeVhd): string => JSON.stringify(vhd);

export async function readFakeVhdParent(remote: Remote, path: string): Promise<string | null> {
  const vhd = JSON.parse((await remote.readFile(path)).toString()) as FakeVhd;
  return vhd.parent === null ? null : `${dirnameOf(path)}/${vhd.parent}`;
}

/** Same contract as remotes/vhd-merge mergeVhdOnRemote; `crashAfterWrite` stops between its two steps. */
export function fakeMerge(options: { crashAfterWrite?: () => boolean } = {}) {
  const calls: string[] = [];
  const merge = async (remote: Remote, childPath: string): Promise<void> => {
    calls.push(childPath);
    const child = JSON.parse((await remote.readFile(childPath)).toString()) as FakeVhd;
    if (child.parent === null) throw new Error(`${childPath} is not a delta`);
    const parentPath = `${dirnameOf(childPath)}/${child.parent}`;
    const parent = JSON.parse((await remote.readFile(parentPath)).toString()) as FakeVhd;
    // Idempotent on resume: the union with the child's blocks on top gives the same result again.
    const merged: FakeVhd = {
      uuid: child.uuid,
      parent: parent.parent,
      blocks: { ...parent.blocks, ...child.blocks },
    };
    await remote.writeFileAtomic(parentPath, JSON.stringify(merged));
    if (options.crashAfterWrite?.()) throw new Error('crash (injected) inside the merge');
    await remote.rename(parentPath, childPath);
  };
  return { merge, calls };
}

/** The disk a kept backup restores to: blocks of its chain, oldest first, newer on top. */
export async function restoreDisk(remote: Remote, vhdPath: string): Promise<Record<string, string>> {
  const vhd = JSON.parse((await remote.readFile(vhdPath)).toString()) as FakeVhd;
  const below = vhd.parent === null ? {} : await restoreDisk(remote, `${dirnameOf(vhdPath)}/${vhd.parent}`);
  return { ...below, ...vhd.blocks };
}

export function deltaMetadata(
  timestamp: number,
  disks: Record<string, { vdiUuid: string; differencing: boolean }>,
  extra: Partial<BackupMetadata> = {},
): BackupMetadata {
  const paths = backupPaths(VM, timestamp);
  const vhds: Record<string, string> = {};
  const isVhdDifferencing: Record<string, boolean> = {};
  const vdis: Record<string, Record<string, unknown>> = {};
  for (const [ref, disk] of Object.entries(disks)) {
    vhds[ref] = paths.metadataVhdRef(JOB, disk.vdiUuid);
    isVhdDifferencing[`${ref}.vhd`] = disk.differencing;
    vdis[ref] = { uuid: `snap-${disk.vdiUuid}`, $snapshot_of$uuid: disk.vdiUuid, other_config: {} };
  }
  return {
    version: '2.0.0',
    mode: 'delta',
    jobId: JOB,
    scheduleId: 'nightly',
    timestamp,
    vm: { uuid: VM, name_label: 'web-1' },
    vmSnapshot: { uuid: 'snapshot-uuid', name_label: '[XO Backup nightly] web-1' },
    vbds: {},
    vdis,
    vifs: {},
    vtpms: [],
    vhds,
    isVhdDifferencing,
    size: 0,
    ...extra,
  } as BackupMetadata;
}

export function fullMetadata(timestamp: number, extra: Partial<BackupMetadata> = {}): BackupMetadata {
  return {
    version: '2.0.0',
    mode: 'full',
    jobId: JOB,
    scheduleId: 'weekly-full',
    timestamp,
    vm: { uuid: VM, name_label: 'web-1' },
    vmSnapshot: { uuid: 'snapshot-uuid' },
    xva: backupPaths(VM, timestamp).metadataXvaRef,
    size: 4,
    ...extra,
  } as BackupMetadata;
}

/** Writes a delta chain of one disk the way a backup run does: VHD first, metadata last. */
export async function writeDeltaChain(
  remote: Remote,
  days: number,
  { fullEvery = 0, vdiUuid = 'vdi-a', ref = 'OpaqueRef:disk-a' } = {},
): Promise<void> {
  const { writeBackupMetadata } = await import('../../remotes/repository');
  let previous: string | null = null;
  for (let i = 0; i < days; i++) {
    const t = T0 + i * DAY;
    const paths = backupPaths(VM, t);
    const full = previous === null || (fullEvery > 0 && i % fullEvery === 0);
    const vhd: FakeVhd = {
      uuid: `uuid-${i}`,
      parent: full ? null : previous,
      blocks: { [`b${i % 3}`]: `day${i}` },
    };
    await remote.writeFileAtomic(paths.vhd(JOB, vdiUuid), fakeVhd(vhd));
    await writeBackupMetadata(remote, deltaMetadata(t, { [ref]: { vdiUuid, differencing: !full } }));
    previous = `${paths.basename}.vhd`;
  }
}
