import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkVhdFile,
  createVhdStream,
  decodeHeader,
  encodeHeader,
  openVhdChain,
  openVhdFile,
  readVhdStream,
  VhdError,
} from '../../formats/vhd';
import { MemDisk, makeTmp, writeStream } from './helpers';

let tmp: { dir: string; cleanup(): Promise<void> };
let good: string;
const MiB = 1024 * 1024;
beforeAll(async () => {
  tmp = await makeTmp();
  const disk = new MemDisk(7 * MiB);
  disk.randomBlock(0);
  disk.randomBlock(2);
  good = path.join(tmp.dir, 'good.vhd');
  await writeStream(createVhdStream(disk), good);
});
afterAll(async () => {
  await tmp.cleanup();
});

let n = 0;
async function variant(mutate: (file: string) => Promise<void>): Promise<string> {
  const f = path.join(tmp.dir, `bad${n++}.vhd`);
  await copyFile(good, f);
  await mutate(f);
  return f;
}

async function patch(file: string, offset: number, bytes: Buffer): Promise<void> {
  const fh = await open(file, 'r+');
  await fh.write(bytes, 0, bytes.length, offset);
  await fh.close();
}

async function expectVhdError(
  p: Promise<unknown>,
  code: string,
  file: string,
  problem: RegExp,
): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err) => err,
  );
  expect(e).toBeInstanceOf(VhdError);
  expect(e.code).toBe(code);
  expect(e.file).toBe(file);
  expect(e.problem).toMatch(problem);
}

async function drain(file: string): Promise<void> {
  for await (const _ of readVhdStream(createReadStream(file), file)) {
  }
}

describe('malformed VHDs give a typed VhdError naming file and problem', () => {
  it('truncated file', async () => {
    const size = (await readFile(good)).length;
    const f = await variant((f) => truncate(f, size - 1024 * 1024));
    await expectVhdError(openVhdFile(f), 'TRUNCATED', f, /truncated/);
    await expectVhdError(drain(f), 'TRUNCATED', f, /ended/);
    const tiny = await variant((f) => truncate(f, 100));
    await expectVhdError(openVhdFile(tiny), 'TRUNCATED', tiny, /too short/);
    await expectVhdError(drain(tiny), 'TRUNCATED', tiny, /ended/);
  });

  it('wrong cookie (footer, header)', async () => {
    const size = (await readFile(good)).length;
    const f = await variant(async (f) => {
      await patch(f, 0, Buffer.from('notavhd!'));
      await patch(f, size - 512, Buffer.from('notavhd!'));
    });
    await expectVhdError(openVhdFile(f), 'BAD_COOKIE', f, /wrong cookie/);
    await expectVhdError(drain(f), 'BAD_COOKIE', f, /wrong cookie/);
    const h = await variant((f) => patch(f, 512, Buffer.from('cxdense!')));
    await expectVhdError(openVhdFile(h), 'BAD_COOKIE', h, /cxsparse/);
    await expectVhdError(drain(h), 'BAD_COOKIE', h, /cxsparse/);
  });

  it('bad checksum', async () => {
    const size = (await readFile(good)).length;
    const f = await variant(async (f) => {
      await patch(f, 100, Buffer.from([0x42]));
      await patch(f, size - 512 + 100, Buffer.from([0x42]));
    });
    await expectVhdError(openVhdFile(f), 'BAD_CHECKSUM', f, /checksum/);
    await expectVhdError(drain(f), 'BAD_CHECKSUM', f, /checksum/);
    const h = await variant((f) => patch(f, 512 + 700, Buffer.from([1])));
    await expectVhdError(openVhdFile(h), 'BAD_CHECKSUM', h, /dynamic header: bad checksum/);
  });

  it('BAT entry past end of file', async () => {
    const f = await variant(async (f) => {
      const bytes = await readFile(f);
      const header = decodeHeader(bytes.subarray(512, 1536));
      const e = Buffer.alloc(4);
      e.writeUInt32BE(0x00ffff00);
      await patch(f, header.tableOffset + 4, e);
    });
    await expectVhdError(openVhdFile(f), 'BAT_PAST_END', f, /BAT entry 1 .*past the end/);
    await expectVhdError(drain(f), 'TRUNCATED', f, /block 1/);
  });

  it('overlapping blocks are found by check', async () => {
    const f = await variant(async (f) => {
      const bytes = await readFile(f);
      const header = decodeHeader(bytes.subarray(512, 1536));
      await patch(f, header.tableOffset + 8, bytes.subarray(header.tableOffset, header.tableOffset + 4));
    });
    await expectVhdError(checkVhdFile(f), 'BAT_OVERLAP', f, /block 2 .*overlaps block 0/);
    await expectVhdError(drain(f), 'BAT_OVERLAP', f, /overlaps/);
    await checkVhdFile(good);
  });

  it('chain problems: missing parent, parent UUID mismatch, loops', async () => {
    const dir = path.join(tmp.dir, 'chains');
    await mkdir(dir);
    const disk = new MemDisk(4 * MiB);
    disk.randomBlock(1);
    const pUuid = crypto.randomUUID();
    const parent = path.join(dir, 'parent.vhd');
    await writeStream(createVhdStream(disk, { uuid: pUuid }), parent);
    // missing parent
    const orphan = path.join(dir, 'orphan.vhd');
    await writeStream(
      createVhdStream(disk, { parent: { uuid: pUuid, name: 'gone.vhd', timestamp: new Date() } }),
      orphan,
    );
    await expectVhdError(openVhdChain(orphan), 'PARENT_MISSING', orphan, /"gone.vhd" not found/);
    // parent UUID mismatch
    const wrong = path.join(dir, 'wrong.vhd');
    await writeStream(
      createVhdStream(disk, {
        parent: { uuid: crypto.randomUUID(), name: 'parent.vhd', timestamp: new Date() },
      }),
      wrong,
    );
    await expectVhdError(openVhdChain(wrong), 'PARENT_UUID_MISMATCH', wrong, /parent.vhd has UUID/);
    // a loop a → b → a (UUIDs consistent, so only the loop is wrong)
    const aUuid = crypto.randomUUID();
    const bUuid = crypto.randomUUID();
    const a = path.join(dir, 'a.vhd');
    const b = path.join(dir, 'b.vhd');
    const t = new Date();
    await writeStream(
      createVhdStream(disk, { uuid: aUuid, parent: { uuid: bUuid, name: 'b.vhd', timestamp: t } }),
      a,
    );
    await writeStream(
      createVhdStream(disk, { uuid: bUuid, parent: { uuid: aUuid, name: 'a.vhd', timestamp: t } }),
      b,
    );
    await expectVhdError(openVhdChain(a), 'CHAIN_LOOP', b, /loop/);
    // a file that is its own parent
    const selfUuid = crypto.randomUUID();
    const self = path.join(dir, 'self.vhd');
    await writeStream(
      createVhdStream(disk, { uuid: selfUuid, parent: { uuid: selfUuid, name: 'self.vhd', timestamp: t } }),
      self,
    );
    await expectVhdError(openVhdChain(self), 'CHAIN_LOOP', self, /loop/);
  });

  it('unsupported block size and absurd fields', async () => {
    const f = await variant(async (f) => {
      const bytes = await readFile(f);
      const header = decodeHeader(bytes.subarray(512, 1536));
      await patch(f, 512, encodeHeader({ ...header, blockSize: 4096 }));
    });
    await expectVhdError(openVhdFile(f), 'UNSUPPORTED', f, /block size/);
    const g = await variant(async (f) => {
      const bytes = await readFile(f);
      const header = decodeHeader(bytes.subarray(512, 1536));
      await patch(f, 512, encodeHeader({ ...header, maxTableEntries: 1 }));
    });
    await expectVhdError(openVhdFile(g), 'BAD_FIELD', g, /BAT has 1 entries/);
    const empty = path.join(tmp.dir, 'empty.vhd');
    await writeFile(empty, '');
    await expectVhdError(openVhdFile(empty), 'TRUNCATED', empty, /too short/);
    await expectVhdError(drain(empty), 'TRUNCATED', empty, /ended after 0 bytes/);
  });
});
