import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vhdCommand } from '../../cli/vhd';
import { decodeHeader } from '../../formats/vhd';
import { buildChain, judge, makeTmp } from './helpers';

let tmp: { dir: string; cleanup(): Promise<void> };
beforeAll(async () => {
  tmp = await makeTmp();
});
afterAll(async () => {
  await tmp.cleanup();
});
const MiB = 1024 * 1024;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await vhdCommand(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('xcpb vhd', () => {
  it('from-raw, info, check, to-raw round-trip a raw image (judged by qemu-img too)', async () => {
    const raw = path.join(tmp.dir, 'disk.raw');
    const size = 9 * MiB + 4096;
    const bytes = Buffer.alloc(size);
    randomBytes(3000).copy(bytes, 100);
    randomBytes(MiB).copy(bytes, 6 * MiB + 512);
    randomBytes(512).copy(bytes, size - 512);
    await writeFile(raw, bytes);
    const vhd = path.join(tmp.dir, 'disk.vhd');
    const made = await cli('from-raw', raw, vhd);
    expect(made.code).toBe(0);
    expect(made.out).toContain('3 blocks');
    const info = await cli('info', vhd, '--json');
    expect(info.code).toBe(0);
    const j = JSON.parse(info.out);
    expect(j.diskType).toBe('dynamic');
    expect(j.virtualSize).toBe(size);
    expect(j.blocks.indexes).toEqual([0, 3, 4]);
    const text = await cli('info', vhd);
    expect(text.out).toMatch(/type\s+dynamic/);
    expect(text.out).toMatch(/blocks\s+3 allocated \(0,3-4\)/);
    expect((await cli('check', vhd)).code).toBe(0);
    const back = path.join(tmp.dir, 'back.raw');
    expect((await cli('to-raw', vhd, back)).code).toBe(0);
    expect((await readFile(back)).equals(bytes)).toBe(true);
    const judged = path.join(tmp.dir, 'judged.raw');
    await judge(judged, vhd);
    expect((await readFile(judged)).equals(bytes)).toBe(true);
  });

  it('check exits 1 naming the problem; bad usage exits 2', async () => {
    const raw = path.join(tmp.dir, 'small.raw');
    await writeFile(raw, randomBytes(2 * MiB));
    const vhd = path.join(tmp.dir, 'small.vhd');
    await cli('from-raw', raw, vhd);
    const bad = path.join(tmp.dir, 'bad.vhd');
    await copyFile(vhd, bad);
    const fh = await open(bad, 'r+');
    await fh.write(Buffer.from('XXXXXXXX'), 0, 8, 512);
    await fh.close();
    const r = await cli('check', bad);
    expect(r.code).toBe(1);
    expect(r.err).toContain(bad);
    expect(r.err).toContain('wrong cookie');
    const missing = await cli('info', path.join(tmp.dir, 'nope.vhd'));
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('does not exist');
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('info')).code).toBe(2);
    expect((await cli('info', vhd, '--bogus')).code).toBe(2);
    const odd = path.join(tmp.dir, 'odd.raw');
    await writeFile(odd, Buffer.alloc(1000));
    const o = await cli('from-raw', odd, path.join(tmp.dir, 'odd.vhd'));
    expect(o.code).toBe(1);
    expect(o.err).toContain('multiple of 512');
  });

  it('merge merges the oldest delta; to-raw follows parents; info shows the parent', async () => {
    const dir = tmp.dir;
    const { names, disk } = await buildChain(dir, 8 * MiB, 2);
    const tip = path.join(dir, names[2]);
    const i = await cli('info', tip);
    expect(i.out).toContain(`parent        ${names[1]}`);
    expect((await cli('check', tip)).out).toContain('chain of 3 files');
    const m = await cli('merge', path.join(dir, names[1]));
    expect(m.code).toBe(0);
    expect(m.err).toContain('merging: 100%');
    expect((await cli('check', tip)).out).toContain('chain of 2 files');
    const out = path.join(dir, 'merged.raw');
    expect((await cli('to-raw', tip, out)).code).toBe(0);
    expect((await readFile(out)).equals(disk.read(0, disk.size))).toBe(true);
    const notDiff = await cli('merge', path.join(dir, names[1]));
    expect(notDiff.code).toBe(1);
    expect(notDiff.err).toContain('not a differencing VHD');
  });
  it('check looks into the parents too', async () => {
    const dir = path.join(tmp.dir, 'deep');
    await mkdir(dir);
    const { names } = await buildChain(dir, 8 * MiB, 1);
    const base = path.join(dir, names[0]);
    const bytes = await readFile(base);
    const header = decodeHeader(bytes.subarray(512, 1536));
    const present: number[] = [];
    for (let i = 0; i < header.maxTableEntries; i++) {
      if (bytes.readUInt32BE(header.tableOffset + i * 4) !== 0xffffffff) present.push(i);
    }
    expect(present.length).toBeGreaterThan(1);
    // make the second stored block point at the first one's place
    const fh = await open(base, 'r+');
    await fh.write(
      bytes.subarray(header.tableOffset + present[0] * 4, header.tableOffset + present[0] * 4 + 4),
      0,
      4,
      header.tableOffset + present[1] * 4,
    );
    await fh.close();
    const r = await cli('check', path.join(dir, names[1]));
    expect(r.code).toBe(1);
    expect(r.err).toContain(base);
    expect(r.err).toContain('overlaps');
  });
});
