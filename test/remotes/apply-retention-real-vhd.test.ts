// The same retention, on real VHD files (formats/vhd writer) merged the two real ways: in place (a
// remote that can rewrite files) and by writing the merged file anew (any other remote); proves the
// contracts line up (merged file under the child's name, parent gone, chains readable).

import { rm, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ParentRef } from '../../formats/vhd';
import { createVhdStream } from '../../formats/vhd';
import { backupPaths, vmBackupDir } from '../../remotes/backup-paths';
import { BackupRepository } from '../../remotes/backup-repository';
import type { Remote } from '../../remotes/remote';
import { writeBackupMetadata } from '../../remotes/repository';
import { readVhdParent } from '../../remotes/vhd-store';
import { runXcpb } from '../helpers/cli';
import { DAY, deltaMetadata, JOB, T0, tempRemote, VM } from './fixtures';

const MiB = 1024 * 1024;
const DISK_SIZE = 8 * MiB; // 4 blocks of 2 MiB

let remote: Remote;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ remote, cleanup } = await tempRemote());
});
afterEach(() => cleanup());

/** The same folder seen as a remote that cannot rewrite files in place (an object store). */
const withoutInPlace = (r: Remote): Remote => Object.assign(Object.create(r), { inPlace: undefined });

/** Day i writes block (i % 4) filled with byte i+1; returns the full disk bytes after each day. */
async function writeRealChain(days: number): Promise<Buffer[]> {
  const disk = Buffer.alloc(DISK_SIZE);
  const snapshots: Buffer[] = [];
  let parent: ParentRef | undefined;
  for (let i = 0; i < days; i++) {
    const t = T0 + i * DAY;
    const block = i % 4;
    const data = Buffer.alloc(2 * MiB, i + 1);
    data.copy(disk, block * 2 * MiB);
    snapshots.push(Buffer.from(disk));
    const blocks =
      parent === undefined
        ? [0, 1, 2, 3].filter((b) => disk.subarray(b * 2 * MiB, (b + 1) * 2 * MiB).some((x) => x !== 0))
        : [block];
    const source = {
      size: DISK_SIZE,
      blocks,
      readBlock: async (b: number) => Buffer.from(disk.subarray(b * 2 * MiB, (b + 1) * 2 * MiB)),
    };
    const uuid = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const paths = backupPaths(VM, t);
    const write = await remote.createWriteStreamAtomic(paths.vhd(JOB, 'vdi-a'));
    await pipeline(createVhdStream(source, { uuid, timestamp: new Date(t), parent }), write.stream);
    await write.commit();
    await writeBackupMetadata(
      remote,
      deltaMetadata(t, { 'OpaqueRef:disk-a': { vdiUuid: 'vdi-a', differencing: parent !== undefined } }),
    );
    parent = { uuid, name: `${paths.basename}.vhd`, timestamp: new Date(t) };
  }
  return snapshots;
}

async function readDisk(vhdPath: string): Promise<Buffer> {
  const chain = await new BackupRepository(remote).openChain(vhdPath);
  try {
    return await chain.readAt(0, DISK_SIZE);
  } finally {
    await chain.close();
  }
}

describe.each([
  ['in place', (r: Remote) => r],
  ['by rewriting the merged file', withoutInPlace],
])('applyRetention with formats/vhd, merging %s', (_how, view) => {
  it('merges real VHDs: kept backups read the same bytes, the oldest kept one is now a full', async () => {
    const snapshots = await writeRealChain(5);
    const repository = new BackupRepository(view(remote));
    const policy = { scheduleId: 'nightly', mode: 'delta', remote: 2, timeZone: 'UTC' } as const;
    const report = await repository.applyRetention(VM, policy);
    expect(report.plan.operations.filter((o) => o.kind === 'merge')).toHaveLength(3);

    const entries = await repository.listVmBackups(VM);
    expect(entries.map((e) => [e.basename, e.status])).toEqual([
      ['20261104T030000Z', 'ok'],
      ['20261105T030000Z', 'ok'],
    ]);
    const dir = `${vmBackupDir(VM)}/vdis/${JOB}/vdi-a`;
    expect(await remote.list(dir)).toEqual(['20261104T030000Z.vhd', '20261105T030000Z.vhd']);
    expect(await readVhdParent(remote, `${dir}/20261104T030000Z.vhd`)).toBeNull();
    expect(await readVhdParent(remote, `${dir}/20261105T030000Z.vhd`)).toBe(`${dir}/20261104T030000Z.vhd`);
    expect((await readDisk(`${dir}/20261104T030000Z.vhd`)).equals(snapshots[3]!)).toBe(true);
    expect((await readDisk(`${dir}/20261105T030000Z.vhd`)).equals(snapshots[4]!)).toBe(true);
    expect((await repository.applyRetention(VM, policy)).done).toEqual([]);
  });
});

describe('listing real VHDs', () => {
  it('marks a backup whose VHD is truncated as broken, and its descendants too, without throwing', async () => {
    await writeRealChain(3);
    const dir = `${vmBackupDir(VM)}/vdis/${JOB}/vdi-a`;
    const middle = `${dir}/20261102T030000Z.vhd`;
    const bytes = await remote.readFile(middle);
    await remote.writeFileAtomic(middle, bytes.subarray(0, 300));
    const entries = await new BackupRepository(remote).listVmBackups(VM);
    expect(entries.map((e) => e.status)).toEqual(['ok', 'broken', 'broken']);
    expect(entries[1]!.problems[0]).toMatch(/^unreadable VHD vdis\/job-1\/vdi-a\/20261102T030000Z.vhd/);
    expect(entries[2]!.problems[0]).toMatch(
      /^delta vdis\/job-1\/vdi-a\/20261103T030000Z.vhd: its ancestor .*20261102T030000Z.vhd is unreadable/,
    );
  });
});

describe('xcpb backups delete', () => {
  it("deleting a delta's parent merges it into its child first: every other backup reads the same bytes", async () => {
    const snapshots = await writeRealChain(4);
    const config = `${(remote.url as string).replace('file://', '')}.config.json`;
    await writeFile(config, JSON.stringify({ remotes: [{ id: 'nas', url: remote.url }] }));
    try {
      const out = await runXcpb(['backups', 'delete', `nas:${VM}/20261102T030000Z`, '--config', config]);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toContain(
        'merge vdis/job-1/vdi-a/20261103T030000Z.vhd into its parent vdis/job-1/vdi-a/20261102T030000Z.vhd',
      );
      const repository = new BackupRepository(remote);
      const entries = await repository.listVmBackups(VM);
      expect(entries.map((e) => [e.basename, e.status])).toEqual([
        ['20261101T030000Z', 'ok'],
        ['20261103T030000Z', 'ok'],
        ['20261104T030000Z', 'ok'],
      ]);
      const dir = `${vmBackupDir(VM)}/vdis/${JOB}/vdi-a`;
      for (const [i, ts] of [
        [0, '20261101T030000Z'],
        [2, '20261103T030000Z'],
        [3, '20261104T030000Z'],
      ] as const) {
        expect((await readDisk(`${dir}/${ts}.vhd`)).equals(snapshots[i]!), ts).toBe(true);
      }
      const missing = await runXcpb(['backups', 'delete', `nas:${VM}/20261102T030000Z`, '--config', config]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toMatch(/no such backup/);
    } finally {
      await rm(config, { force: true });
    }
  });
});
