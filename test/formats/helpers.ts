import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { type BlockSource, createVhdStream, VHD_BLOCK_SIZE } from '../../formats/vhd';
import { judgeChain } from '../tools/vhd-chain-judge';

export const run = promisify(execFile);
export const repoRoot = path.resolve(import.meta.dirname, '../..');

export async function makeTmp(prefix = 'xcpb-formats-'): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A small in-memory sparse disk, for tests only (the code under test never holds a disk). */
export class MemDisk implements BlockSource {
  readonly data = new Map<number, Buffer>();
  constructor(readonly size: number) {}
  get blocks(): number[] {
    return [...this.data.keys()].sort((a, b) => a - b);
  }
  async readBlock(i: number): Promise<Buffer> {
    return Buffer.from(this.data.get(i) ?? Buffer.alloc(VHD_BLOCK_SIZE));
  }
  /** Writes bytes at a virtual offset (allocating the blocks touched). */
  write(offset: number, bytes: Buffer): void {
    let o = 0;
    while (o < bytes.length) {
      const pos = offset + o;
      const bi = Math.floor(pos / VHD_BLOCK_SIZE);
      const within = pos % VHD_BLOCK_SIZE;
      const n = Math.min(bytes.length - o, VHD_BLOCK_SIZE - within);
      let b = this.data.get(bi);
      if (!b) {
        b = Buffer.alloc(VHD_BLOCK_SIZE);
        this.data.set(bi, b);
      }
      bytes.copy(b, within, o, o + n);
      o += n;
    }
  }
  /** Fills block i (within the disk) with random data, possibly only partly. */
  randomBlock(i: number, partial = false): void {
    const b = Buffer.alloc(VHD_BLOCK_SIZE);
    const end = Math.min(VHD_BLOCK_SIZE, this.size - i * VHD_BLOCK_SIZE);
    if (partial) {
      const start = Math.floor(Math.random() * end);
      randomBytes(Math.max(1, Math.floor(Math.random() * (end - start)))).copy(b, start);
    } else {
      randomBytes(end).copy(b, 0);
    }
    this.data.set(i, b);
  }
  clone(): MemDisk {
    const d = new MemDisk(this.size);
    for (const [k, v] of this.data) d.data.set(k, Buffer.from(v));
    return d;
  }
  /** Only the blocks listed, as a BlockSource (a delta). */
  subset(blocks: number[]): BlockSource {
    const sorted = [...blocks].sort((a, b) => a - b);
    return { size: this.size, blocks: sorted, readBlock: (i) => this.readBlock(i) };
  }
  /** The byte range [offset, offset+len) of the virtual disk. */
  read(offset: number, len: number): Buffer {
    const out = Buffer.alloc(len);
    let o = 0;
    while (o < len) {
      const pos = offset + o;
      const bi = Math.floor(pos / VHD_BLOCK_SIZE);
      const within = pos % VHD_BLOCK_SIZE;
      const n = Math.min(len - o, VHD_BLOCK_SIZE - within);
      this.data.get(bi)?.copy(out, o, within, within + n);
      o += n;
    }
    return out;
  }
}

export async function writeStream(stream: Readable, file: string): Promise<void> {
  await pipeline(stream, createWriteStream(file));
}

/** Compares a raw file with a MemDisk, block by block (only reading where needed for huge sparse files). */
export async function expectRawEquals(
  file: string,
  disk: MemDisk,
  opts: { sparseCheck?: boolean } = {},
): Promise<void> {
  const fh = await open(file, 'r');
  try {
    const st = await fh.stat();
    if (st.size !== disk.size) throw new Error(`${file}: size ${st.size}, expected ${disk.size}`);
    const n = Math.ceil(disk.size / VHD_BLOCK_SIZE);
    const indexes = opts.sparseCheck ? disk.blocks : Array.from({ length: n }, (_, i) => i);
    for (const i of indexes) {
      const len = Math.min(VHD_BLOCK_SIZE, disk.size - i * VHD_BLOCK_SIZE);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, i * VHD_BLOCK_SIZE);
      const want = disk.read(i * VHD_BLOCK_SIZE, len);
      if (!buf.equals(want)) throw new Error(`${file}: block ${i} differs`);
    }
  } finally {
    await fh.close();
  }
}

/** Runs the independent judge: qemu-img based chain rebuild. */
export async function judge(out: string, ...layers: string[]): Promise<void> {
  await judgeChain(out, layers);
}

/** Random sorted subset of [0, n). */
export function randomSubset(n: number, p: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (Math.random() < p) out.push(i);
  return out;
}

/** Writes a full + deltas chain into dir; returns the file names (oldest first) and the disk as at the tip. */
export async function buildChain(
  dir: string,
  size: number,
  deltas: number,
  opts: { changeRatio?: number } = {},
): Promise<{ names: string[]; disk: MemDisk }> {
  const disk = new MemDisk(size);
  const count = Math.ceil(size / VHD_BLOCK_SIZE);
  // At least two blocks in the base (tests corrupt "the second stored block"); the rest is random.
  const base = new Set([...randomSubset(count, 0.6), 0, Math.min(1, count - 1)]);
  for (const i of base) disk.randomBlock(i, i % 3 === 0);
  const names: string[] = [];
  let parent: { uuid: string; name: string; timestamp: Date } | undefined;
  for (let n = 0; n <= deltas; n++) {
    const name = `202611${String(10 + n).padStart(2, '0')}T010203Z.vhd`;
    const uuid = crypto.randomUUID();
    const timestamp = new Date(Date.UTC(2026, 10, 10 + n, 1, 2, 3));
    let src: BlockSource = disk;
    if (parent) {
      const changed = randomSubset(count, opts.changeRatio ?? 0.3);
      for (const i of changed) disk.randomBlock(i, i % 2 === 0);
      src = disk.subset(changed);
    }
    await writeStream(createVhdStream(src, { uuid, timestamp, parent }), path.join(dir, name));
    names.push(name);
    parent = { uuid, name, timestamp };
  }
  return { names, disk };
}
