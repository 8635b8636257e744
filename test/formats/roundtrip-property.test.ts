// Property tests over random sparse disks and random stream chunkings: VHD stream reader and XVA.
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createVhdStream, readVhdStream, VHD_BLOCK_SIZE } from '../../formats/vhd';
import { createXvaStream, readXva } from '../../formats/xva';
import { MemDisk } from './helpers';

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

/** Re-chunks bytes into pieces of the given sizes (cycled), as a network would. */
function chunked(bytes: Buffer, sizes: number[]): Readable {
  const parts: Buffer[] = [];
  let o = 0;
  let k = 0;
  while (o < bytes.length) {
    const n = sizes[k++ % sizes.length];
    parts.push(bytes.subarray(o, o + n));
    o += n;
  }
  return Readable.from(parts);
}

const diskArb = fc
  .record({
    sectors: fc.integer({ min: 0, max: 7 * 4096 }),
    seed: fc.integer({ min: 0, max: 2 ** 30 }),
    partial: fc.boolean(),
  })
  .map(({ sectors, seed, partial }) => {
    const disk = new MemDisk(sectors * 512);
    const count = Math.ceil(disk.size / VHD_BLOCK_SIZE);
    for (let i = 0; i < count; i++) if ((seed >> i) & 1) disk.randomBlock(i, partial);
    return disk;
  });

describe('round-trip properties', () => {
  it('readVhdStream gives back every block whatever the chunking of the input', async () => {
    await fc.assert(
      fc.asyncProperty(
        diskArb,
        fc.array(fc.integer({ min: 100, max: 3 * 1024 * 1024 }), { minLength: 1, maxLength: 5 }),
        async (disk, sizes) => {
          const bytes = await collect(createVhdStream(disk));
          const got = new Map<number, Buffer>();
          for await (const item of readVhdStream(chunked(bytes, sizes))) {
            if (item.type === 'block') got.set(item.index, item.data);
            else expect(item.footer.currentSize).toBe(disk.size);
          }
          expect([...got.keys()]).toEqual(disk.blocks);
          for (const [i, d] of got) expect(d.equals(await disk.readBlock(i))).toBe(true);
        },
      ),
      { numRuns: 15 },
    );
  });

  it('XVA: any sparse disk (sizes not multiple of 1 MiB, empty) reads back to the same bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        diskArb,
        fc.constantFrom('none' as const, 'gzip' as const),
        async (disk, compression) => {
          const xva = await collect(
            createXvaStream({
              objects: [{ class: 'VDI', id: 'Ref:1', snapshot: { virtual_size: String(disk.size) } }],
              disks: [{ ref: 'Ref:1', source: disk }],
              compression,
            }),
          );
          const out = Buffer.alloc(disk.size);
          const indexes: number[] = [];
          for await (const item of readXva(chunked(xva, [777_777, 1_000_003]))) {
            if (item.type !== 'chunk') continue;
            indexes.push(item.index);
            item.data.copy(out, item.offset);
          }
          expect(out.equals(disk.read(0, disk.size))).toBe(true);
          // XAPI's importer needs the first and the last chunk, whatever they hold
          if (disk.size > 0) {
            expect(indexes[0]).toBe(0);
            expect(indexes[indexes.length - 1]).toBe(Math.ceil(disk.size / (1024 * 1024)) - 1);
          } else expect(indexes).toEqual([]);
        },
      ),
      { numRuns: 15 },
    );
  });
});
