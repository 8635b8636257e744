// Streams laid out as XAPI's vhd-tool emits them (reference §5.6): footer copy, header, an empty
// sector where a MacX locator claims its data, BAT at 2048, blocks in index order, footer.
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Bat,
  type BlockSource,
  chainBlockSource,
  createVhdStream,
  DiskType,
  encodeFooter,
  encodeHeader,
  makeFooter,
  makeHeader,
  openVhdChain,
  openVhdFile,
  readVhdStream,
  reidentifyVhdStream,
  VHD_BLOCK_SIZE,
  VhdError,
  writeRawFile,
} from '../../formats/vhd';
import { expectRawEquals, judge, MemDisk, makeTmp, writeStream } from './helpers';

let tmp: { dir: string; cleanup(): Promise<void> };
beforeAll(async () => {
  tmp = await makeTmp();
});
afterAll(async () => {
  await tmp.cleanup();
});
const MiB = 1024 * 1024;
const MACX = 0x4d616358;

async function xapiStyle(disk: BlockSource, parent?: { uuid: string; path: string }): Promise<Buffer> {
  const entries = Math.ceil(disk.size / VHD_BLOCK_SIZE);
  const footer = {
    ...makeFooter({
      size: disk.size,
      diskType: parent ? DiskType.differencing : DiskType.dynamic,
      uuid: crypto.randomUUID(),
      timestamp: new Date('2000-01-01T00:00:00Z'),
    }),
    creatorApplication: 'caml',
    creatorVersion: 1,
    creatorHostOs: 0,
  };
  const header = makeHeader({
    tableOffset: 2048,
    maxTableEntries: entries,
    parent: parent && { uuid: parent.uuid, name: parent.path, timestamp: new Date() },
    parentLocators: parent
      ? [{ platformCode: MACX, dataSpace: 512, dataLength: `file://${parent.path}`.length, dataOffset: 1536 }]
      : [],
  });
  const bat = Bat.empty(entries);
  const batBytes = Math.max(512, Math.ceil((entries * 4) / 512) * 512);
  let pos = 2048 + batBytes;
  for (const b of disk.blocks) {
    bat.entries[b] = pos / 512;
    pos += 512 + VHD_BLOCK_SIZE;
  }
  const parts = [encodeFooter(footer), encodeHeader(header), Buffer.alloc(512), bat.encode()];
  for (const b of disk.blocks) parts.push(Buffer.alloc(512, 0xff), await disk.readBlock(b));
  parts.push(encodeFooter(footer));
  return Buffer.concat(parts);
}

describe("XAPI's export layout", () => {
  it('a dynamic export: our stream reader, our file reader and qemu-img agree', async () => {
    const disk = new MemDisk(7 * MiB + 512);
    disk.randomBlock(0);
    disk.randomBlock(3, true);
    const bytes = await xapiStyle(disk);
    const file = path.join(tmp.dir, 'dyn.vhd');
    await writeFile(file, bytes);
    const seen: number[] = [];
    for await (const item of readVhdStream(Readable.from([bytes]))) {
      if (item.type === 'header') expect(item.footer.creatorApplication).toBe('caml');
      else {
        seen.push(item.index);
        expect(item.data.equals(await disk.readBlock(item.index))).toBe(true);
      }
    }
    expect(seen).toEqual([0, 3]);
    const f = await openVhdFile(file);
    expect((await f.readAt(0, disk.size)).equals(disk.read(0, disk.size))).toBe(true);
    await f.close();
    await judge(path.join(tmp.dir, 'dyn.raw'), file);
    await expectRawEquals(path.join(tmp.dir, 'dyn.raw'), disk);
  });

  it('a delta export names its parent by SR path: stream-readable, chain says which parent is missing, reidentify makes it a backup delta', async () => {
    const size = 6 * MiB;
    const base = new MemDisk(size);
    base.randomBlock(0);
    base.randomBlock(1);
    const baseUuid = crypto.randomUUID();
    const baseFile = path.join(tmp.dir, '20261120T000000Z.vhd');
    await writeStream(createVhdStream(base, { uuid: baseUuid }), baseFile);
    const next = base.clone();
    next.randomBlock(1);
    next.randomBlock(2);
    const srPath = '/var/run/sr-mount/0f1e/8c2d.vhd';
    const bytes = await xapiStyle(next.subset([1, 2]), {
      uuid: crypto.randomUUID(),
      path: srPath,
    });
    const exportFile = path.join(tmp.dir, 'export.vhd');
    await writeFile(exportFile, bytes);
    const err = await openVhdChain(exportFile).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(VhdError);
    expect(err.code).toBe('PARENT_MISSING');
    expect(err.problem).toContain(srPath);
    const { stream } = await reidentifyVhdStream(createReadStream(exportFile), {
      uuid: crypto.randomUUID(),
      parent: { uuid: baseUuid, name: '20261120T000000Z.vhd', timestamp: new Date() },
    });
    const delta = path.join(tmp.dir, '20261121T000000Z.vhd');
    await writeStream(stream, delta);
    const chain = await openVhdChain(delta);
    await writeRawFile(chainBlockSource(chain), path.join(tmp.dir, 'delta.raw'));
    await chain.close();
    await expectRawEquals(path.join(tmp.dir, 'delta.raw'), next);
    await judge(path.join(tmp.dir, 'delta.qemu.raw'), baseFile, delta);
    await expectRawEquals(path.join(tmp.dir, 'delta.qemu.raw'), next);
  });
});
