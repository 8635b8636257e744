// The disk view and the readers, against images made by Debian's tools (sfdisk, sgdisk, mke2fs -d,
// mkfs.vfat + mcopy): every file listed and read equals the file put there; malformed inputs give
// errors that say what is wrong.
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeArchive } from '../../formats/archive/file-archive';
import { type BlockDevice, openRawDevice } from '../../formats/disk/device';
import type { FileSystemReader } from '../../formats/disk/filesystem';
import { openLocalChainDevice } from '../../formats/disk/vhd-chain-device';
import { discoverVolumes, openFilesystem, type Volume } from '../../formats/disk/volumes';
import { walk } from '../../formats/disk/walk';
import { createVhdStream, VHD_BLOCK_SIZE } from '../../formats/vhd';
import { openBackupDisk } from '../../remotes/backup-disks';
import { openRemote } from '../../remotes/open-remote';
import { MemDisk, makeTmp } from '../formats/helpers';
import { ext4Image, fatImage, makeTree, placeAt, sh, sha256, sparseFile, xfsImage } from './images';

let tmp: Awaited<ReturnType<typeof makeTmp>>;
beforeAll(async () => {
  tmp = await makeTmp('xcpb-files-');
});
afterAll(() => tmp?.cleanup());

const MiB = 1 << 20;

const tree = {
  'hello.txt': 'hello world\n',
  'docs/ünïcødé €.txt': 'UTF-8 name\n',
  'docs/deep/er/file.bin': Buffer.alloc(300_000, 7),
  'random.bin': Buffer.from(Array.from({ length: 5 * MiB }, (_, i) => (i * 2654435761) >>> 24)),
};

async function readAllFs(fs: FileSystemReader, p: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await fs.openRead(p)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Every regular file of the filesystem with its sha256, by walking from the root. */
async function digest(fs: FileSystemReader): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const item of walk(fs, ['/'])) {
    if (item.entry.type === 'file' && !item.name.startsWith('lost+found')) {
      out[item.name] = sha256(await readAllFs(fs, item.path));
    }
  }
  return out;
}

const expected = (files: Record<string, string | Buffer>) =>
  Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha256(v)]));

async function withVolume<T>(
  dev: BlockDevice,
  id: string,
  fn: (fs: FileSystemReader, v: Volume) => Promise<T>,
): Promise<T> {
  const { volumes } = await discoverVolumes(dev);
  const v = volumes.find((x) => x.id === id);
  if (!v) throw new Error(`no volume ${id} in ${volumes.map((x) => x.id)}`);
  const fs = await openFilesystem(v);
  try {
    return await fn(fs, v);
  } finally {
    await fs.close();
  }
}

describe('partition tables and filesystems', () => {
  let mbrDisk: string;
  beforeAll(async () => {
    const src = path.join(tmp.dir, 'src');
    await makeTree(src, tree);
    await symlink('docs/deep/er/file.bin', path.join(src, 'link'));
    await symlink('/etc/passwd', path.join(src, 'abs-link'));
    mbrDisk = path.join(tmp.dir, 'mbr.img');
    await sparseFile(mbrDisk, 160 * MiB);
    // 1: ext4, 2: extended holding 5: FAT32 and 6: FAT16
    await sh('bash', [
      '-c',
      `printf 'label: dos\\n,40M,83\\n,,5\\n,70M,c\\n,,6\\n' | sfdisk -q "$0"`,
      mbrDisk,
    ]);
    const dump = (await sh('sfdisk', ['-J', mbrDisk])).stdout;
    const parts = JSON.parse(dump).partitiontable.partitions as {
      node: string;
      start: number;
      size: number;
    }[];
    const at = (n: number) => parts.find((p) => p.node.endsWith(String(n)))!;
    await ext4Image(path.join(tmp.dir, 'p1.img'), at(1).size * 512, src);
    await placeAt(mbrDisk, path.join(tmp.dir, 'p1.img'), at(1).start * 512);
    const fatSrc = path.join(tmp.dir, 'fatsrc');
    await makeTree(fatSrc, tree);
    await fatImage(path.join(tmp.dir, 'p5.img'), at(5).size * 512, 32, fatSrc);
    await placeAt(mbrDisk, path.join(tmp.dir, 'p5.img'), at(5).start * 512);
    await fatImage(path.join(tmp.dir, 'p6.img'), at(6).size * 512, 16, fatSrc);
    await placeAt(mbrDisk, path.join(tmp.dir, 'p6.img'), at(6).start * 512);
  });

  it('MBR with logical partitions: ext4, FAT32, FAT16, each file equal to the one put there', async () => {
    const dev = await openRawDevice(mbrDisk);
    try {
      const layout = await discoverVolumes(dev);
      expect(layout.scheme).toBe('mbr');
      expect(layout.volumes.map((v) => [v.id, v.fsType])).toEqual([
        ['1', 'ext4'],
        ['5', 'fat32'],
        ['6', 'fat16'],
      ]);
      await withVolume(dev, '1', async (fs) => {
        expect(await digest(fs)).toEqual(expected(tree));
        const link = await fs.stat('/link');
        expect(link).toMatchObject({ type: 'symlink', target: 'docs/deep/er/file.bin' });
        expect((await fs.stat('/abs-link')).target).toBe('/etc/passwd');
        const docs = await fs.list('/docs');
        expect(docs.entries.map((e) => e.name)).toEqual(['deep', 'ünïcødé €.txt']);
        expect(docs.entries[1]).toMatchObject({ type: 'file', size: 11, uid: expect.any(Number) });
        expect(docs.entries[1].mode! & 0o777).toBe(0o644);
      });
      // into a folder: symlinks (even absolute ones) are written as symlinks, never followed, and
      // nothing already there is replaced
      await withVolume(dev, '1', async (fs) => {
        const out = path.join(tmp.dir, 'extract');
        const summary = await writeArchive(fs, ['/abs-link', '/link', '/docs'], 'folder', out);
        expect(summary).toMatchObject({ symlinks: 2, files: 2, folders: 3 });
        expect(await readlink(path.join(out, 'abs-link'))).toBe('/etc/passwd');
        expect(await readlink(path.join(out, 'link'))).toBe('docs/deep/er/file.bin');
        await expect(writeArchive(fs, ['/hello.txt', '/hello.txt'], 'folder', out)).rejects.toThrow(/EEXIST/);
      });
      for (const id of ['5', '6']) {
        await withVolume(dev, id, async (fs) => {
          expect(await digest(fs)).toEqual(expected(tree));
          expect(fs.label).toBe('TESTFAT');
        });
      }
    } finally {
      await dev.close();
    }
  });

  it('GPT with FAT12 and ext4; a bare FAT disk without a partition table', async () => {
    const disk = path.join(tmp.dir, 'gpt.img');
    await sparseFile(disk, 64 * MiB);
    await sh('sgdisk', [
      '-n',
      '1:2048:+4M',
      '-t',
      '1:ef00',
      '-c',
      '1:esp',
      '-n',
      '3:0:+40M',
      '-t',
      '3:8300',
      disk,
    ]);
    const src = path.join(tmp.dir, 'gsrc');
    await makeTree(src, { 'a.txt': 'A\n', 'b/c.txt': 'C\n' });
    await fatImage(path.join(tmp.dir, 'g1.img'), 4 * MiB, 12, src, 'ESP');
    await placeAt(disk, path.join(tmp.dir, 'g1.img'), 2048 * 512);
    const p3 = JSON.parse((await sh('sfdisk', ['-J', disk])).stdout).partitiontable.partitions[1];
    await ext4Image(path.join(tmp.dir, 'g3.img'), p3.size * 512, src);
    await placeAt(disk, path.join(tmp.dir, 'g3.img'), p3.start * 512);
    const dev = await openRawDevice(disk);
    try {
      const layout = await discoverVolumes(dev);
      expect(layout.scheme).toBe('gpt');
      // numbered by GPT entry, as Linux does (entry 2 is empty)
      expect(layout.volumes.map((v) => [v.id, v.fsType, v.label])).toEqual([
        ['1', 'fat12', 'esp'],
        ['3', 'ext4', undefined],
      ]);
      for (const id of ['1', '3']) {
        await withVolume(dev, id, async (fs) =>
          expect(await digest(fs)).toEqual(expected({ 'a.txt': 'A\n', 'b/c.txt': 'C\n' })),
        );
      }
    } finally {
      await dev.close();
    }
    const bare = path.join(tmp.dir, 'bare.img');
    await fatImage(bare, 20 * MiB, 16, src);
    const bdev = await openRawDevice(bare);
    try {
      const layout = await discoverVolumes(bdev);
      expect(layout).toMatchObject({ scheme: 'none', volumes: [{ id: '', fsType: 'fat16' }] });
    } finally {
      await bdev.close();
    }
  });

  it('NTFS (mkntfs, files copied in through ntfs-3g): folders of hundreds of entries, sparse and large files, symlinks', async () => {
    const img = path.join(tmp.dir, 'ntfs.img');
    await sparseFile(img, 64 * MiB);
    await sh('mkntfs', ['-F', '-q', '-Q', '-L', 'WinData', img]);
    const mnt = path.join(tmp.dir, 'ntfs-mnt');
    await mkdir(mnt);
    const many: Record<string, string> = {};
    for (let i = 0; i < 300; i++) many[`many/file number ${i}.txt`] = `${i}\n`;
    await sh('ntfs-3g', [img, mnt]);
    try {
      await makeTree(mnt, { ...tree, ...many });
      await symlink('docs/deep/er/file.bin', path.join(mnt, 'link'));
      await sh('truncate', ['-s', `${30 * MiB}`, path.join(mnt, 'sparse.bin')]);
    } finally {
      await sh('umount', [mnt]);
    }
    const disk = path.join(tmp.dir, 'ntfs-disk.img');
    await sparseFile(disk, 80 * MiB);
    await sh('sgdisk', ['-n', '1:2048:+64M', '-t', '1:0700', disk]);
    await placeAt(disk, img, MiB);
    const dev = await openRawDevice(disk);
    try {
      const { volumes } = await discoverVolumes(dev);
      expect(volumes.map((v) => [v.id, v.fsType, v.kind])).toEqual([['1', 'ntfs', 'Microsoft basic data']]);
      await withVolume(dev, '1', async (fs) => {
        expect(fs.label).toBe('WinData');
        expect(await digest(fs)).toEqual(
          expected({ ...tree, ...many, 'sparse.bin': Buffer.alloc(30 * MiB) }),
        );
        expect(await fs.stat('/link')).toMatchObject({ type: 'symlink', target: 'docs/deep/er/file.bin' });
        const page = await fs.list('/many', { offset: 10, limit: 5 });
        expect(page.total).toBe(300);
        expect(page.entries.map((e) => e.name)).toEqual(
          Object.keys(many)
            .map((k) => k.slice(5))
            .sort()
            .slice(10, 15),
        );
      });
    } finally {
      await dev.close();
    }
  });

  it('XFS (mkfs.xfs with a proto file): short-form and multi-block folders, extents, symlinks, owners', async () => {
    const src = path.join(tmp.dir, 'xfs-src');
    const files: Record<string, string | Buffer> = {
      'etc/hostname': 'xfs-host\n',
      'docs/ünïcødé-€.txt': 'UTF-8 name\n',
      'data/random.bin': tree['random.bin'],
    };
    for (let i = 0; i < 400; i++) files[`many/entry-${String(i).padStart(3, '0')}.txt`] = `${i}\n`;
    await makeTree(src, files);
    const img = path.join(tmp.dir, 'xfs.img');
    await xfsImage(img, src, { link: 'etc/hostname' });
    const dev = await openRawDevice(img);
    try {
      const { volumes } = await discoverVolumes(dev);
      expect(volumes.map((v) => [v.id, v.fsType])).toEqual([['', 'xfs']]);
      await withVolume(dev, '', async (fs) => {
        expect(fs.label).toBe('XFSTEST');
        expect(await digest(fs)).toEqual(expected(files));
        expect(await fs.stat('/link')).toMatchObject({ type: 'symlink', target: 'etc/hostname' });
        expect(await fs.stat('/etc/hostname')).toMatchObject({ type: 'file', size: 9, uid: 1000, gid: 100 });
        const page = await fs.list('/many', { offset: 395, limit: 10 });
        expect(page.total).toBe(400);
        expect(page.entries.map((e) => e.name)).toEqual([
          'entry-395.txt',
          'entry-396.txt',
          'entry-397.txt',
          'entry-398.txt',
          'entry-399.txt',
        ]);
      });
    } finally {
      await dev.close();
    }
  });

  it('malformed inputs: each a clear error', async () => {
    // A truncated disk: partition 6 now ends past the end.
    const cut = path.join(tmp.dir, 'cut.img');
    await sh('cp', ['--sparse=always', mbrDisk, cut]);
    await sh('truncate', ['-s', `${120 * MiB}`, cut]);
    let dev = await openRawDevice(cut);
    await expect(discoverVolumes(dev)).rejects.toThrow(
      /partition 2 ends at byte \d+, past the end of the \d+-byte disk \(truncated/,
    );
    await dev.close();

    // An overlapping GPT entry (checksums fixed, so only the overlap is wrong).
    const gpt = path.join(tmp.dir, 'overlap.img');
    await sparseFile(gpt, 32 * MiB);
    await sh('sgdisk', ['-n', '1:2048:+8M', '-n', '2:0:+8M', gpt]);
    const buf = await readFile(gpt);
    const entries = buf.readBigUInt64LE(512 + 72) * 512n;
    const e2 = Number(entries) + 128;
    buf.writeBigUInt64LE(4096n, e2 + 32); // entry 2 now starts inside entry 1
    const count = buf.readUInt32LE(512 + 80);
    buf.writeUInt32LE(crc32(buf.subarray(Number(entries), Number(entries) + count * 128)), 512 + 88);
    buf.writeUInt32LE(0, 512 + 16);
    buf.writeUInt32LE(crc32(buf.subarray(512, 512 + buf.readUInt32LE(512 + 12))), 512 + 16);
    await writeFile(gpt, buf);
    dev = await openRawDevice(gpt);
    await expect(discoverVolumes(dev)).rejects.toThrow('GPT: partitions 1 and 2 overlap');
    await dev.close();

    // A damaged GPT checksum.
    buf[512 + 100] ^= 1;
    buf.writeUInt32LE((buf.readUInt32LE(512 + 88) ^ 1) >>> 0, 512 + 88);
    await writeFile(gpt, buf);
    dev = await openRawDevice(gpt);
    await expect(discoverVolumes(dev)).rejects.toThrow(/GPT: .*checksum mismatch/);
    await dev.close();

    // A corrupt ext4 superblock (magic kept, block size field absurd).
    const small = path.join(tmp.dir, 'small');
    await makeTree(small, { 'a.txt': 'A\n', 'b/c.txt': 'C\n' });
    const ext = path.join(tmp.dir, 'badsb.img');
    await ext4Image(ext, 16 * MiB, small);
    const e = await readFile(ext);
    e.writeUInt32LE(0x7fff, 1024 + 24); // s_log_block_size
    e.writeUInt32LE(0, 1024 + 4); // s_blocks_count_lo
    await writeFile(ext, e);
    dev = await openRawDevice(ext);
    await expect(withVolume(dev, '', async () => {})).rejects.toThrow(/not a readable ext2\/3\/4 filesystem/);
    await dev.close();

    // A FAT folder whose subfolder entry points back at itself: a loop, not an endless walk.
    const loop = path.join(tmp.dir, 'loop.img');
    await fatImage(loop, 20 * MiB, 16, small);
    await sh('mmd', ['-i', loop, '::/b/inner'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    const l = await readFile(loop);
    dev = await openRawDevice(loop);
    const bCluster = await withVolume(dev, '', async (fs) => (await fs.stat('/b')).id);
    const innerCluster = await withVolume(dev, '', async (fs) => (await fs.stat('/b/inner')).id);
    await dev.close();
    // find the directory entry "INNER      " and point it at /b's cluster
    const at = l.indexOf(Buffer.from('INNER      ', 'latin1'));
    expect(at).toBeGreaterThan(0);
    expect(l.readUInt16LE(at + 26)).toBe(Number(innerCluster!.split(':')[1]));
    l.writeUInt16LE(Number(bCluster!.split(':')[1]), at + 26);
    await writeFile(loop, l);
    dev = await openRawDevice(loop);
    await expect(
      withVolume(dev, '', async (fs) => {
        for await (const _ of walk(fs, ['/b'])) {
        }
      }),
    ).rejects.toThrow('/b/inner: the folder contains itself (looping directory)');
    await dev.close();

    // A FAT chain that loops (a file's cluster points at itself).
    const chainLoop = path.join(tmp.dir, 'fatloop.img');
    await fatImage(chainLoop, 20 * MiB, 16, path.join(tmp.dir, 'src'));
    dev = await openRawDevice(chainLoop);
    const rnd = await withVolume(dev, '', async (fs) => (await fs.stat('/random.bin')).id!);
    await dev.close();
    const c = Number(rnd.split(':')[1]);
    const f = await readFile(chainLoop);
    const fatAt = f.readUInt16LE(14) * 512;
    f.writeUInt16LE(c + 1, fatAt + (c + 1) * 2); // second cluster links to itself
    await writeFile(chainLoop, f);
    dev = await openRawDevice(chainLoop);
    await expect(withVolume(dev, '', (fs) => readAllFs(fs, '/random.bin'))).rejects.toThrow(
      '/random.bin: cluster chain loops',
    );
    await dev.close();
  });
});

describe('the disk view of a VHD chain', () => {
  async function writeVhd(
    file: string,
    disk: MemDisk,
    uuid: string,
    parent?: { uuid: string; name: string },
  ) {
    const timestamp = new Date('2026-01-01T00:00:00Z');
    await pipeline(
      createVhdStream(disk, { uuid, timestamp, ...(parent ? { parent: { ...parent, timestamp } } : {}) }),
      createWriteStream(file),
    );
  }
  const uuidOf = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

  it('reads a chain of 200 files with at most 8 open at a time, newest data first', async () => {
    const dir = path.join(tmp.dir, 'chain200');
    await mkdir(dir);
    const size = 16 * MiB;
    const truth = Buffer.alloc(size);
    for (let i = 0; i < 200; i++) {
      const d = new MemDisk(size);
      // each delta writes 4 KiB somewhere, sector-aligned, and i=0 (the full) writes everything
      if (i === 0) {
        const all = Buffer.alloc(size, 1);
        d.write(0, all);
        all.copy(truth, 0);
      } else {
        // a delta block replaces the whole 2 MiB block (our writer sets every bitmap bit)
        const bytes = Buffer.alloc(4096, i & 0xff);
        const at = ((i * 7919) % (size / 4096)) * 4096;
        d.write(at, bytes);
        const bi = Math.floor(at / VHD_BLOCK_SIZE);
        (await d.readBlock(bi)).copy(truth, bi * VHD_BLOCK_SIZE);
      }
      await writeVhd(
        path.join(dir, `${i}.vhd`),
        d,
        uuidOf(i),
        i > 0 ? { uuid: uuidOf(i - 1), name: `${i - 1}.vhd` } : undefined,
      );
    }
    // descriptors of this process open on the chain's files (others, of the test runner, vary)
    const chainFds = async () => {
      let n = 0;
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
        if (target.startsWith(`${dir}/`)) n++;
      }
      return n;
    };
    const dev = await openLocalChainDevice(path.join(dir, '199.vhd'), { maxOpenFiles: 8, cacheBlocks: 2 });
    try {
      let maxFds = 0;
      const out = Buffer.alloc(size);
      for (let o = 0; o < size; o += VHD_BLOCK_SIZE) {
        (await dev.read(o, VHD_BLOCK_SIZE)).copy(out, o);
        maxFds = Math.max(maxFds, await chainFds());
      }
      expect(sha256(out)).toBe(sha256(truth));
      expect(maxFds).toBeLessThanOrEqual(8);
      // unaligned reads across block boundaries
      expect(
        (await dev.read(VHD_BLOCK_SIZE - 100, 300)).equals(
          truth.subarray(VHD_BLOCK_SIZE - 100, VHD_BLOCK_SIZE + 200),
        ),
      ).toBe(true);
    } finally {
      await dev.close();
    }
    // the same chain through a remote (the product's path: ranged reads of the Remote only)
    const remote = openRemote({ id: 'store', url: `file://${dir}` });
    const remoteDev = await openBackupDisk(
      remote,
      { index: 0, name: 'disk', vhdPath: '199.vhd' },
      { cacheBlocks: 2 },
    );
    try {
      const out = Buffer.alloc(size);
      for (let o = 0; o < size; o += VHD_BLOCK_SIZE) (await remoteDev.read(o, VHD_BLOCK_SIZE)).copy(out, o);
      expect(sha256(out)).toBe(sha256(truth));
    } finally {
      await remoteDev.close();
    }
  });

  it('a chain of 150 deltas restores a file from ext4', async () => {
    const dir = path.join(tmp.dir, 'chain150');
    await mkdir(dir);
    const src = path.join(dir, 'src');
    await makeTree(src, { 'etc/config': 'v1\n', 'data.bin': tree['random.bin'] });
    const imgA = path.join(dir, 'a.img');
    await ext4Image(imgA, 32 * MiB, src);
    // the guest changes a file: the B image is A with etc/config rewritten by debugfs
    const imgB = path.join(dir, 'b.img');
    await sh('cp', [imgA, imgB]);
    await writeFile(path.join(dir, 'new-config'), 'version 150\n');
    await sh('debugfs', ['-w', '-R', `rm /etc/config`, imgB]);
    await sh('debugfs', ['-w', '-R', `write ${path.join(dir, 'new-config')} /etc/config`, imgB]);
    const a = await readFile(imgA);
    const b = await readFile(imgB);
    const blocks = (32 * MiB) / VHD_BLOCK_SIZE;
    const full = new MemDisk(32 * MiB);
    full.write(0, a);
    await writeVhd(path.join(dir, '0.vhd'), full, uuidOf(0));
    for (let i = 1; i <= 150; i++) {
      const d = new MemDisk(32 * MiB);
      const bi = i % blocks;
      d.write(bi * VHD_BLOCK_SIZE, b.subarray(bi * VHD_BLOCK_SIZE, (bi + 1) * VHD_BLOCK_SIZE));
      await writeVhd(path.join(dir, `${i}.vhd`), d, uuidOf(i), { uuid: uuidOf(i - 1), name: `${i - 1}.vhd` });
    }
    const dev = await openLocalChainDevice(path.join(dir, '150.vhd'));
    try {
      await withVolume(dev, '', async (fs) => {
        expect((await readAllFs(fs, '/etc/config')).toString()).toBe('version 150\n');
        expect(sha256(await readAllFs(fs, '/data.bin'))).toBe(sha256(tree['random.bin']));
      });
    } finally {
      await dev.close();
    }
  });
});
