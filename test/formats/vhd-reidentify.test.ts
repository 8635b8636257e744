import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chainBlockSource,
  computeLayout,
  createVhdStream,
  DiskType,
  openVhdChain,
  openVhdFile,
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

describe('reidentifyVhdStream (export → backup file)', () => {
  it('gives an export our identity and a parent, and the chain reads the right disk', async () => {
    const disk = new MemDisk(9 * MiB + 512);
    for (const i of [0, 2, 4]) disk.randomBlock(i, i === 2);
    const baseUuid = crypto.randomUUID();
    const base = path.join(tmp.dir, '20261101T000000Z.vhd');
    await writeStream(createVhdStream(disk, { uuid: baseUuid }), base);
    const next = disk.clone();
    next.randomBlock(1);
    next.randomBlock(4);
    // what XAPI would send: a differencing export with its own random uuid and SR parent name
    const exported = createVhdStream(next.subset([1, 4]), {
      parent: { uuid: crypto.randomUUID(), name: '/var/run/sr-mount/x/y.vhd', timestamp: new Date() },
    });
    const uuid = crypto.randomUUID();
    const { stream, blocks, size } = await reidentifyVhdStream(exported, {
      uuid,
      parent: { uuid: baseUuid, name: '20261101T000000Z.vhd', timestamp: new Date() },
    });
    expect(blocks).toBe(2);
    expect(size).toBe(disk.size);
    const delta = path.join(tmp.dir, '20261102T000000Z.vhd');
    await writeStream(stream, delta);
    const f = await openVhdFile(delta);
    expect(f.uuid).toBe(uuid);
    expect(f.diskType).toBe(DiskType.differencing);
    expect(f.header!.parentUuid).toBe(baseUuid);
    await f.close();
    const chain = await openVhdChain(delta);
    await writeRawFile(chainBlockSource(chain), path.join(tmp.dir, 'r.raw'));
    await chain.close();
    await expectRawEquals(path.join(tmp.dir, 'r.raw'), next);
    await judge(path.join(tmp.dir, 'q.raw'), base, delta);
    await expectRawEquals(path.join(tmp.dir, 'q.raw'), next);
  });

  it('a cut export fails the output stream instead of ending it cleanly', async () => {
    const disk = new MemDisk(6 * MiB);
    for (const i of [0, 1, 2]) disk.randomBlock(i);
    const full = path.join(tmp.dir, 'full.vhd');
    await writeStream(createVhdStream(disk), full);
    const bytes = await readFile(full);
    const cut = path.join(tmp.dir, 'cut.vhd');
    await writeFile(cut, bytes.subarray(0, bytes.length - 512)); // all blocks, no trailing footer
    const { stream } = await reidentifyVhdStream(
      createReadStream(cut),
      { uuid: crypto.randomUUID() },
      'cut export',
    );
    const err = await writeStream(stream, path.join(tmp.dir, 'out.vhd')).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(VhdError);
    expect(err.file).toBe('cut export');
    expect(err.problem).toMatch(/trailing footer/);
    await expect(
      reidentifyVhdStream(Readable.from([Buffer.alloc(0)]), { uuid: crypto.randomUUID() }),
    ).rejects.toThrow(VhdError);
  });

  it('passes the blocks through unchanged whatever the chunking of the export', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 7 * 4096 }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        fc.array(fc.integer({ min: 1, max: 3 * MiB }), { minLength: 1, maxLength: 5 }),
        fc.boolean(),
        async (sectors, seed, sizes, differencing) => {
          const disk = new MemDisk(sectors * 512);
          const count = Math.ceil(disk.size / VHD_BLOCK_SIZE);
          for (let i = 0; i < count; i++) if ((seed >> i) & 1) disk.randomBlock(i);
          const exported = await collect(createVhdStream(disk, { uuid: crypto.randomUUID() }));
          const identity = {
            uuid: crypto.randomUUID(),
            timestamp: new Date('2026-11-02T00:00:00Z'),
            parent: differencing
              ? { uuid: crypto.randomUUID(), name: '20261101T000000Z.vhd', timestamp: new Date() }
              : undefined,
          };
          const { stream, blocks } = await reidentifyVhdStream(chunked(exported, sizes), identity);
          expect(blocks).toBe(disk.blocks.length);
          // what our writer makes of the same disk and identity, byte for byte
          expect((await collect(stream)).equals(await collect(createVhdStream(disk, identity)))).toBe(true);
        },
      ),
      { numRuns: 20 },
    );
  });

  it('makes a dynamic export block with a partial sector bitmap whole: zeroes, bitmap full', async () => {
    const disk = new MemDisk(4 * MiB);
    disk.randomBlock(0);
    disk.randomBlock(1);
    const exported = await collect(createVhdStream(disk, { uuid: crypto.randomUUID() }));
    const layout = computeLayout(disk.size, [0, 1]);
    const bitmapAt = layout.bat.offset(1)!;
    exported[bitmapAt] = 0x0f; // sectors 0..3 of block 1 not allocated: a dynamic disk reads zeroes
    const parent = { uuid: crypto.randomUUID(), name: '20261101T000000Z.vhd', timestamp: new Date() };
    const { stream } = await reidentifyVhdStream(chunked(exported, [1000]), {
      uuid: crypto.randomUUID(),
      parent,
    });
    const out = await collect(stream);
    const outLayout = computeLayout(disk.size, [0, 1], { parent });
    const at = outLayout.bat.offset(1)!;
    expect(out.subarray(at, at + 512).every((b) => b === 0xff)).toBe(true);
    const data = out.subarray(at + 512, at + 512 + VHD_BLOCK_SIZE);
    expect(data.subarray(0, 4 * 512).every((b) => b === 0)).toBe(true);
    expect(data.subarray(4 * 512).equals((await disk.readBlock(1)).subarray(4 * 512))).toBe(true);
  });

  it('refuses blocks out of index order, a block over the metadata, and a cut inside a block', async () => {
    const disk = new MemDisk(6 * MiB);
    for (const i of [0, 1, 2]) disk.randomBlock(i);
    const good = await collect(createVhdStream(disk, { uuid: crypto.randomUUID() }));
    const layout = computeLayout(disk.size, [0, 1, 2]);
    const batAt = layout.header.tableOffset;
    const failure = async (bytes: Buffer) => {
      try {
        const { stream } = await reidentifyVhdStream(
          chunked(bytes, [4096]),
          { uuid: crypto.randomUUID() },
          'x',
        );
        await collect(stream);
      } catch (e) {
        return e as VhdError;
      }
      throw new Error('no failure');
    };
    const swapped = Buffer.from(good);
    swapped.writeUInt32BE(layout.bat.entries[1], batAt);
    swapped.writeUInt32BE(layout.bat.entries[0], batAt + 4);
    const e1 = await failure(swapped);
    expect(e1).toBeInstanceOf(VhdError);
    expect(e1.problem).toMatch(/out of index order/);
    const overlap = Buffer.from(good);
    overlap.writeUInt32BE(batAt / 512, batAt); // block 0 over the BAT itself
    const e2 = await failure(overlap);
    expect(e2.code).toBe('BAT_OVERLAP');
    const e3 = await failure(good.subarray(0, layout.bat.offset(1)! + 512 + MiB));
    expect(e3.code).toBe('TRUNCATED');
    expect(e3.problem).toMatch(/block 1 .*1 of 3 blocks/);
    expect(e3.file).toBe('x');
  });
});

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

/** Re-chunks bytes into pieces of the given sizes (cycled), as a network would. */
function chunked(bytes: Buffer, sizes: number[]): Readable {
  const parts: Buffer[] = [];
  for (let o = 0, k = 0; o < bytes.length; k++) {
    const n = sizes[k % sizes.length];
    parts.push(bytes.subarray(o, o + n));
    o += n;
  }
  return Readable.from(parts);
}
