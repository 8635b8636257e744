import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chainBlockSource,
  createChainStream,
  createVhdStream,
  mergeVhdIntoParent,
  openVhdChain,
  openVhdFile,
  VHD_BLOCK_SIZE,
  VHD_MAX_SIZE,
  writeRawFile,
} from '../../formats/vhd';
import { buildChain, expectRawEquals, judge, MemDisk, makeTmp, writeStream } from './helpers';

let tmp: { dir: string; cleanup(): Promise<void> };
beforeAll(async () => {
  tmp = await makeTmp();
});
afterAll(async () => {
  await tmp.cleanup();
});

const MiB = 1024 * 1024;

async function expectAllAgree(
  dir: string,
  names: string[],
  disk: MemDisk,
  label: string,
  opts: { sameSizeLayers?: boolean } = {},
): Promise<void> {
  const tip = path.join(dir, names[names.length - 1]);
  // 1. our chain reader
  const chain = await openVhdChain(tip);
  expect(chain.files.length).toBe(names.length);
  expect(chain.size).toBe(disk.size);
  const viaChain = path.join(dir, `${label}.chain.raw`);
  await writeRawFile(chainBlockSource(chain), viaChain);
  await expectRawEquals(viaChain, disk);
  // random-access reads across block boundaries
  for (let k = 0; k < 5; k++) {
    const off = Math.floor((Math.random() * (disk.size - 5000)) / 512) * 512 + (k % 2);
    const len = Math.min(disk.size - off, 3 * MiB + 17);
    expect((await chain.readAt(off, len)).equals(disk.read(off, len))).toBe(true);
  }
  // 2. our synthetic stream, judged by qemu-img alone
  const synth = path.join(dir, `${label}.synthetic.vhd`);
  await writeStream(createChainStream(chain), synth);
  const uuid = chain.uuid;
  await chain.close();
  const synthFile = await openVhdFile(synth);
  expect(synthFile.uuid).toBe(uuid);
  expect(synthFile.diskType).toBe(3);
  await synthFile.close();
  const viaSynth = path.join(dir, `${label}.synthetic.raw`);
  await judge(viaSynth, synth);
  await expectRawEquals(viaSynth, disk);
  // 3. qemu-img on the chain files themselves (the judge wants layers of one size)
  if (opts.sameSizeLayers === false) return;
  const viaQemu = path.join(dir, `${label}.qemu.raw`);
  await judge(viaQemu, ...names.map((n) => path.join(dir, n)));
  await expectRawEquals(viaQemu, disk);
}

describe('VHD chains and merge', () => {
  it('a full + 5 deltas reads the same through our chain reader, our synthetic stream and qemu-img; still after each merge', async () => {
    const dir = path.join(tmp.dir, 'chain');
    await mkdir(dir);
    const size = 23 * MiB + 3584;
    const { names, disk } = await buildChain(dir, size, 5);
    await expectAllAgree(dir, names, disk, 'before');
    let step = 0;
    while (names.length > 1) {
      const delta = await openVhdFile(path.join(dir, names[1]));
      const tipUuid = delta.uuid;
      await delta.close();
      const progress: number[] = [];
      await mergeVhdIntoParent(path.join(dir, names[1]), {
        onProgress: (d) => progress.push(d),
        batchBlocks: 3,
      });
      expect(progress.length).toBeGreaterThan(0);
      names.shift(); // the full took the name of the merged delta
      const merged = await openVhdFile(path.join(dir, names[0]));
      expect(merged.uuid).toBe(tipUuid);
      expect(merged.diskType).toBe(3);
      await merged.close();
      const left = (await readdir(dir)).filter((n) => /^\d{8}T\d{6}Z\.vhd$/.test(n));
      expect(left.sort()).toEqual([...names].sort());
      expect((await readdir(dir)).some((n) => n.endsWith('.merge.json'))).toBe(false);
      await expectAllAgree(dir, names, disk, `after${step++}`);
    }
  });

  it('merges a delta of a larger disk into its parent (disk grew within the BAT room)', async () => {
    const dir = path.join(tmp.dir, 'grow');
    await mkdir(dir);
    const small = new MemDisk(3 * MiB);
    small.randomBlock(0);
    small.randomBlock(1);
    const pu = crypto.randomUUID();
    await writeStream(createVhdStream(small, { uuid: pu }), path.join(dir, 'a.vhd'));
    const big = new MemDisk(9 * MiB);
    for (const [k, v] of small.data) big.data.set(k, Buffer.from(v));
    big.randomBlock(4, true);
    big.randomBlock(1);
    await writeStream(
      createVhdStream(big.subset([1, 4]), { parent: { uuid: pu, name: 'a.vhd', timestamp: new Date() } }),
      path.join(dir, 'b.vhd'),
    );
    await expectAllAgree(dir, ['a.vhd', 'b.vhd'], big, 'grow-before', { sameSizeLayers: false });
    await mergeVhdIntoParent(path.join(dir, 'b.vhd'));
    await expectAllAgree(dir, ['b.vhd'], big, 'grow-after');
  });
  it('merges a delta of a disk that grew past the BAT room: blocks in the way move to the end first', async () => {
    const dir = path.join(tmp.dir, 'grow-far');
    await mkdir(dir);
    // 256 MiB = 128 entries = exactly one BAT sector: any growth needs more room
    const small = new MemDisk(256 * MiB);
    for (const i of [0, 1, 5, 127]) small.randomBlock(i, i === 5);
    const pu = crypto.randomUUID();
    await writeStream(createVhdStream(small, { uuid: pu }), path.join(dir, 'a.vhd'));
    const big = new MemDisk(300 * MiB + 512);
    for (const [k, v] of small.data) big.data.set(k, Buffer.from(v));
    for (const i of [1, 128, 149, 150]) big.randomBlock(i, i === 149);
    await writeStream(
      createVhdStream(big.subset([1, 128, 149, 150]), {
        parent: { uuid: pu, name: 'a.vhd', timestamp: new Date() },
      }),
      path.join(dir, 'b.vhd'),
    );
    await expectAllAgree(dir, ['a.vhd', 'b.vhd'], big, 'far-before', { sameSizeLayers: false });
    await mergeVhdIntoParent(path.join(dir, 'b.vhd'));
    const merged = await openVhdFile(path.join(dir, 'b.vhd'));
    expect(merged.header!.maxTableEntries).toBe(151);
    await merged.close();
    await expectAllAgree(dir, ['b.vhd'], big, 'far-after');
  });
  it('a sparse 2040 GiB chain (blocks at both ends) reads, merges and is judged the same', async () => {
    const dir = path.join(tmp.dir, 'huge');
    await mkdir(dir);
    const disk = new MemDisk(VHD_MAX_SIZE);
    const last = VHD_MAX_SIZE / VHD_BLOCK_SIZE - 1;
    disk.randomBlock(last);
    disk.randomBlock(0, true);
    const pu = crypto.randomUUID();
    await writeStream(createVhdStream(disk.clone(), { uuid: pu }), path.join(dir, 'a.vhd'));
    disk.randomBlock(last, true);
    disk.randomBlock(1);
    await writeStream(
      createVhdStream(disk.subset([1, last]), { parent: { uuid: pu, name: 'a.vhd', timestamp: new Date() } }),
      path.join(dir, 'b.vhd'),
    );
    const check = async (names: string[], label: string) => {
      const chain = await openVhdChain(path.join(dir, names[names.length - 1]));
      expect(chain.blocks()).toEqual([0, 1, last]);
      for (const i of chain.blocks())
        expect((await chain.readBlock(i)).equals(await disk.readBlock(i))).toBe(true);
      await chain.close();
      const out = path.join(dir, `${label}.raw`);
      await judge(out, ...names.map((n) => path.join(dir, n)));
      await expectRawEquals(out, disk, { sparseCheck: true });
    };
    await check(['a.vhd', 'b.vhd'], 'before');
    await mergeVhdIntoParent(path.join(dir, 'b.vhd'));
    await check(['b.vhd'], 'after');
  });
});
