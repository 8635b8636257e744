import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chainBlockSource,
  createVhdStream,
  DiskType,
  openVhdChain,
  openVhdFile,
  reidentifyVhdStream,
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
});
