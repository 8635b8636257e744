import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backupPaths, resolveInVmDir, vmBackupDir } from '../../remotes/backup-paths';
import { type Remote, RemoteError } from '../../remotes/remote';
import {
  cleanTemporaryFiles,
  deleteBackup,
  listAllBackups,
  listVmBackups,
  writeBackupMetadata,
} from '../../remotes/repository';
import {
  DAY,
  deltaMetadata,
  fakeVhd,
  fullMetadata,
  JOB,
  readFakeVhdParent,
  T0,
  tempRemote,
  VM,
  writeDeltaChain,
} from './fixtures';

let remote: Remote;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ remote, cleanup } = await tempRemote());
});
afterEach(() => cleanup());

const vmDir = vmBackupDir(VM);

describe('backupPaths', () => {
  it('names every file as Xen Orchestra does', () => {
    const p = backupPaths(VM, Date.UTC(2026, 0, 15, 2, 0, 0));
    expect(p).toMatchObject({
      basename: '20260115T020000Z',
      vmDir: `xo-vm-backups/${VM}`,
      metadata: `xo-vm-backups/${VM}/20260115T020000Z.json`,
      xva: `xo-vm-backups/${VM}/20260115T020000Z.xva`,
      xvaChecksum: `xo-vm-backups/${VM}/20260115T020000Z.xva.checksum`,
      metadataXvaRef: './20260115T020000Z.xva',
    });
    expect(p.vhd('job-1', 'vdi-a')).toBe(`xo-vm-backups/${VM}/vdis/job-1/vdi-a/20260115T020000Z.vhd`);
    expect(p.metadataVhdRef('job-1', 'vdi-a')).toBe('vdis/job-1/vdi-a/20260115T020000Z.vhd');
    expect(resolveInVmDir(VM, './20260115T020000Z.xva')).toBe(p.xva);
  });

  it('refuses ids that are not a single safe folder name', () => {
    expect(() => backupPaths('../etc', 0)).toThrow(/VM uuid/);
    expect(() => backupPaths(VM, 0).vhd('a/b', 'vdi')).toThrow(/job id/);
  });
});

describe('writeBackupMetadata', () => {
  it('writes <ts>.json atomically, validated, and drops XO cache so XO re-reads the folder', async () => {
    await remote.writeFileAtomic(`${vmDir}/cache.json.gz`, 'stale');
    const meta = fullMetadata(T0);
    const path = await writeBackupMetadata(remote, meta);
    expect(path).toBe(backupPaths(VM, T0).metadata);
    expect(JSON.parse((await remote.readFile(path)).toString())).toEqual(meta);
    expect(await remote.list(vmDir)).toEqual(['20261101T030000Z.json']);
  });

  it('is a no-op for identical content (retried activity) and EEXIST for different content', async () => {
    await writeBackupMetadata(remote, fullMetadata(T0));
    await writeBackupMetadata(remote, fullMetadata(T0));
    await expect(writeBackupMetadata(remote, fullMetadata(T0, { size: 99 }))).rejects.toMatchObject({
      code: 'EEXIST',
      remoteId: 'nas',
    });
  });

  it('refuses metadata XO could not read back, naming the field', async () => {
    await expect(
      writeBackupMetadata(remote, { ...fullMetadata(T0), version: undefined } as never),
    ).rejects.toThrow(/version/);
    await expect(
      writeBackupMetadata(remote, fullMetadata(T0, { xva: 'elsewhere.xva' } as never)),
    ).rejects.toThrow(/xva must be/);
    const delta = deltaMetadata(T0, { 'OpaqueRef:a': { vdiUuid: 'vdi-a', differencing: false } });
    await expect(writeBackupMetadata(remote, { ...delta, isVhdDifferencing: {} } as never)).rejects.toThrow(
      /isVhdDifferencing\["OpaqueRef:a.vhd"\]/,
    );
    await expect(
      writeBackupMetadata(remote, { ...delta, vhds: { 'OpaqueRef:a': 'vdis/j/v/other.vhd' } } as never),
    ).rejects.toThrow(/vhds\.OpaqueRef:a/);
  });
});

describe('listVmBackups', () => {
  it('lists an empty or absent VM folder as no backups', async () => {
    expect(await listVmBackups(remote, VM)).toEqual([]);
    expect(await listAllBackups(remote)).toEqual([]);
  });

  it('lists ok backups oldest first with their data files', async () => {
    await writeDeltaChain(remote, 3);
    await remote.writeFileAtomic(backupPaths(VM, T0 + 5 * DAY).xva, 'xva!');
    await remote.writeFileAtomic(backupPaths(VM, T0 + 5 * DAY).xvaChecksum, '$1$$abc');
    await writeBackupMetadata(remote, fullMetadata(T0 + 5 * DAY));
    const entries = await listVmBackups(remote, VM, { readVhdParent: readFakeVhdParent });
    expect(entries.map((e) => [e.basename, e.status, e.metadata?.mode])).toEqual([
      ['20261101T030000Z', 'ok', 'delta'],
      ['20261102T030000Z', 'ok', 'delta'],
      ['20261103T030000Z', 'ok', 'delta'],
      ['20261106T030000Z', 'ok', 'full'],
    ]);
    expect(entries[1]!.dataFiles).toEqual([`${vmDir}/vdis/${JOB}/vdi-a/20261102T030000Z.vhd`]);
    expect(entries[3]!.dataFiles).toEqual([
      `${vmDir}/20261106T030000Z.xva`,
      `${vmDir}/20261106T030000Z.xva.checksum`,
    ]);
    expect(entries.map((e) => e.timestamp)).toEqual([T0, T0 + DAY, T0 + 2 * DAY, T0 + 5 * DAY]);
  });

  it('never throws for a bad entry: truncated JSON, missing VHD, missing parent, leftover temp file', async () => {
    await writeDeltaChain(remote, 4);
    const p = (i: number) => backupPaths(VM, T0 + i * DAY);
    // truncated JSON (a crash while a non-atomic tool wrote it)
    const json = (await remote.readFile(p(0).metadata)).toString();
    await remote.writeFileAtomic(p(0).metadata, json.slice(0, json.length / 2));
    // a VHD deleted by hand
    await remote.delete(p(2).vhd(JOB, 'vdi-a'));
    // a leftover temp file of an interrupted write, and a JSON that is not metadata
    await remote.writeFileAtomic(`${vmDir}/.20261105T030000Z.json.tmp-0123456789ab`, '{"mode":');
    await remote.writeFileAtomic(`${vmDir}/20261107T030000Z.json`, '{"hello":"world"}');

    const entries = await listVmBackups(remote, VM, { readVhdParent: readFakeVhdParent });
    expect(entries.map((e) => [e.basename, e.status])).toEqual([
      ['20261101T030000Z', 'broken'],
      ['20261102T030000Z', 'ok'],
      ['20261103T030000Z', 'broken'],
      ['20261104T030000Z', 'broken'],
      ['20261107T030000Z', 'broken'],
    ]);
    expect(entries[0]!.problems[0]).toMatch(/^unreadable metadata: invalid JSON/);
    expect(entries[2]!.problems).toEqual([`missing vdis/${JOB}/vdi-a/20261103T030000Z.vhd`]);
    expect(entries[3]!.problems).toEqual([
      `delta vdis/${JOB}/vdi-a/20261104T030000Z.vhd: its parent ${p(2).vhd(JOB, 'vdi-a')} is missing`,
    ]);
    expect(entries[4]!.problems[0]).toMatch(/^invalid metadata: mode/);
  });

  it('reports data without metadata as partial', async () => {
    await remote.writeFileAtomic(backupPaths(VM, T0).xva, 'xva');
    await remote.writeFileAtomic(
      backupPaths(VM, T0 + DAY).vhd(JOB, 'vdi-a'),
      fakeVhd({ uuid: 'u', parent: null, blocks: {} }),
    );
    const entries = await listVmBackups(remote, VM);
    expect(entries.map((e) => [e.id, e.status, e.dataFiles])).toEqual([
      [`${vmDir}/20261101T030000Z`, 'partial', [`${vmDir}/20261101T030000Z.xva`]],
      [`${vmDir}/20261102T030000Z`, 'partial', [`${vmDir}/vdis/${JOB}/vdi-a/20261102T030000Z.vhd`]],
    ]);
  });

  it('reads metadata written by Xen Orchestra, keeping fields it does not know', async () => {
    const xoMetadata = {
      mode: 'full',
      xva: './20240102T030405Z.xva',
      vm: { uuid: VM, is_a_template: false, $pool: 'pool-1' },
      jobId: 'xo-job',
      scheduleId: 'xo-schedule',
      timestamp: Date.UTC(2024, 0, 2, 3, 4, 5),
      version: '2.0.0',
      somethingNew: { x: 1 },
    };
    await remote.writeFileAtomic(`${vmDir}/20240102T030405Z.json`, JSON.stringify(xoMetadata));
    await remote.writeFileAtomic(`${vmDir}/20240102T030405Z.xva`, 'xva');
    const [entry] = await listVmBackups(remote, VM);
    expect(entry!.status).toBe('ok');
    expect(entry!.metadata).toEqual(xoMetadata);
  });

  it('lists every VM, skipping lock files and XO queue folders, sorted by time', async () => {
    const other = '0f1e2d3c-aaaa-4bbb-8ccc-000000000002';
    await writeDeltaChain(remote, 2);
    await remote.writeFileAtomic(backupPaths(other, T0 + 12 * 3_600_000).xva, 'xva');
    await writeBackupMetadata(remote, fullMetadata(T0 + 12 * 3_600_000, { vm: { uuid: other } } as never));
    await remote.writeFileAtomic(`xo-vm-backups/${VM}.xcpb-lock.json`, '{}');
    await remote.writeFileAtomic('xo-vm-backups/.queue/clean-vm/x', VM);
    const all = await listAllBackups(remote);
    expect(all.map((e) => [e.vmUuid, e.basename])).toEqual([
      [VM, '20261101T030000Z'],
      [other, '20261101T150000Z'],
      [VM, '20261102T030000Z'],
    ]);
  });

  it('fails as a whole on an I/O error instead of calling the entry broken (retention would delete it)', async () => {
    await writeDeltaChain(remote, 2);
    const flaky: Remote = Object.assign(Object.create(remote), {
      readFile: async (path: string) => {
        if (path.endsWith('20261102T030000Z.json'))
          throw new RemoteError('nas', path, 'EIO', 'read failed: EIO');
        return remote.readFile(path);
      },
    });
    await expect(listVmBackups(flaky, VM)).rejects.toMatchObject({ code: 'EIO', remoteId: 'nas' });
  });

  it('fails as a whole, naming the remote, when the remote itself is gone', async () => {
    await writeDeltaChain(remote, 1);
    await cleanup();
    await expect(listVmBackups(remote, VM)).rejects.toMatchObject({ code: 'UNAVAILABLE', remoteId: 'nas' });
  });
});

describe('deleteBackup', () => {
  it('deletes a full backup: metadata first, then XVA and checksum', async () => {
    await remote.writeFileAtomic(backupPaths(VM, T0).xva, 'xva');
    await remote.writeFileAtomic(backupPaths(VM, T0).xvaChecksum, 'sum');
    await writeBackupMetadata(remote, fullMetadata(T0));
    const [entry] = await listVmBackups(remote, VM);
    await deleteBackup(remote, entry!);
    expect(await remote.list(vmDir)).toEqual([]);
  });

  it('deletes only the metadata of a delta: its VHD may be a parent (retention merges or deletes it)', async () => {
    await writeDeltaChain(remote, 2);
    const [first] = await listVmBackups(remote, VM);
    await deleteBackup(remote, first!);
    expect(await remote.exists(first!.id)).toBe(false);
    expect(await remote.exists(first!.dataFiles[0]!)).toBe(true);
    const after = await listVmBackups(remote, VM, { readVhdParent: readFakeVhdParent });
    expect(after.map((e) => [e.basename, e.status])).toEqual([
      ['20261101T030000Z', 'partial'],
      ['20261102T030000Z', 'ok'],
    ]);
  });
});

describe('cleanTemporaryFiles', () => {
  it('removes our and XO temp files in the VM folder and chain folders, and nothing else', async () => {
    await writeDeltaChain(remote, 1);
    const chainDir = `${vmDir}/vdis/${JOB}/vdi-a`;
    const leftovers = [
      `${vmDir}/.20261102T030000Z.json.tmp-0123456789ab`,
      `${vmDir}/.1767225600000.20261102T030000Z.xva`,
      `${chainDir}/.20261102T030000Z.vhd.tmp-ba9876543210`,
    ];
    for (const path of leftovers) await remote.writeFileAtomic(path, 'partial');
    await remote.writeFileAtomic(`${chainDir}/.20261101T030000Z.vhd.merge.json`, '{}');
    const removed = await cleanTemporaryFiles(remote, VM);
    expect(removed.sort()).toEqual([...leftovers].sort());
    expect(await remote.list(chainDir)).toEqual(['.20261101T030000Z.vhd.merge.json', '20261101T030000Z.vhd']);
    expect((await listVmBackups(remote, VM)).map((e) => e.status)).toEqual(['ok']);
    expect(await cleanTemporaryFiles(remote, VM)).toEqual([]);
  });
});
