// Differencing blocks whose sector bitmaps are partial (vhd-util / blktap write those; we and XAPI
// write all-ones): the chain reader and the merge must take clear-bit sectors from the parent.
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chainBlockSource,
  createVhdStream,
  decodeHeader,
  mergeVhdIntoParent,
  openVhdChain,
  openVhdFile,
  VHD_BLOCK_SIZE,
  writeRawFile,
} from '../../formats/vhd';
import { expectRawEquals, MemDisk, makeTmp, writeStream } from './helpers';

let tmp: { dir: string; cleanup(): Promise<void> };
beforeAll(async () => {
  tmp = await makeTmp();
});
afterAll(async () => {
  await tmp.cleanup();
});
const MiB = 1024 * 1024;
const SECTORS = VHD_BLOCK_SIZE / 512;

/** Clears the bitmap bits of the given sectors of block `index` in a VHD file. */
async function clearSectors(file: string, index: number, sectors: number[]): Promise<void> {
  const bytes = await readFile(file);
  const h = decodeHeader(bytes.subarray(512, 1536));
  const at = bytes.readUInt32BE(h.tableOffset + index * 4) * 512;
  const fh = await open(file, 'r+');
  const bm = Buffer.alloc(512);
  await fh.read(bm, 0, 512, at);
  for (const s of sectors) bm[s >> 3] &= ~(0x80 >> (s & 7));
  await fh.write(bm, 0, 512, at);
  await fh.close();
}

describe('partial sector bitmaps', () => {
  it('chain reads and merges take clear-bit sectors from the parent (and from a dynamic base as zeros)', async () => {
    const size = 8 * MiB;
    const base = new MemDisk(size);
    base.randomBlock(0);
    base.randomBlock(1);
    const bUuid = crypto.randomUUID();
    const baseFile = path.join(tmp.dir, 'base.vhd');
    await writeStream(createVhdStream(base, { uuid: bUuid }), baseFile);
    // middle: block 1 partially overridden, block 2 new but partial (clear bits → zeros from base)
    const mid = new MemDisk(size);
    mid.randomBlock(1);
    mid.randomBlock(2);
    const mUuid = crypto.randomUUID();
    const midFile = path.join(tmp.dir, 'mid.vhd');
    await writeStream(
      createVhdStream(mid.subset([1, 2]), {
        uuid: mUuid,
        parent: { uuid: bUuid, name: 'base.vhd', timestamp: new Date() },
      }),
      midFile,
    );
    const cleared1 = Array.from({ length: SECTORS }, (_, s) => s).filter((s) => s % 3 === 0);
    const cleared2 = Array.from({ length: 100 }, (_, s) => s + 1000);
    await clearSectors(midFile, 1, cleared1);
    await clearSectors(midFile, 2, cleared2);
    // tip: block 1 partially again
    const tip = new MemDisk(size);
    tip.randomBlock(1);
    const tipFile = path.join(tmp.dir, 'tip.vhd');
    await writeStream(
      createVhdStream(tip.subset([1]), { parent: { uuid: mUuid, name: 'mid.vhd', timestamp: new Date() } }),
      tipFile,
    );
    const clearedTip = Array.from({ length: SECTORS }, (_, s) => s).filter((s) => s % 2 === 0);
    await clearSectors(tipFile, 1, clearedTip);

    // expected disk, sector by sector
    const want = base.clone();
    const put = (disk: MemDisk, block: number, cleared: number[]) => {
      const skip = new Set(cleared);
      for (let s = 0; s < SECTORS; s++) {
        if (skip.has(s)) continue;
        const off = block * VHD_BLOCK_SIZE + s * 512;
        want.write(off, disk.read(off, 512));
      }
    };
    put(mid, 1, cleared1);
    put(mid, 2, cleared2);
    put(tip, 1, clearedTip);

    const check = async (label: string) => {
      const chain = await openVhdChain(tipFile);
      const out = path.join(tmp.dir, `${label}.raw`);
      await writeRawFile(chainBlockSource(chain), out);
      await chain.close();
      await expectRawEquals(out, want);
    };
    await check('before');
    // a dynamic file alone reads clear-bit sectors as zeros
    const m = await openVhdFile(midFile);
    const b2 = await m.readBlock(2);
    expect(b2.subarray(1000 * 512, 1100 * 512).every((x) => x === 0)).toBe(true);
    await m.close();
    await mergeVhdIntoParent(midFile); // base absorbs mid (partial blocks over a dynamic base)
    await check('after-merge-1');
    await mergeVhdIntoParent(tipFile); // and then the tip
    await check('after-merge-2');
    const last = await openVhdFile(tipFile);
    expect(last.diskType).toBe(3);
    await last.close();
  });
});
