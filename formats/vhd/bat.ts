import { BAT_UNUSED, BITMAP_SIZE, SECTOR_SIZE, SECTORS_PER_BLOCK, VHD_BLOCK_SIZE } from './constants';

/** Number of BAT entries a disk of this size needs. */
export function blockCount(size: number): number {
  return Math.ceil(size / VHD_BLOCK_SIZE);
}

/** BAT bytes on disk: 4 bytes per entry, rounded up to whole sectors, at least one sector. */
export function batSize(entries: number): number {
  return Math.max(1, Math.ceil((entries * 4) / SECTOR_SIZE)) * SECTOR_SIZE;
}

/** Bytes of one stored block: sector bitmap then the data. */
export const STORED_BLOCK_SIZE = BITMAP_SIZE + VHD_BLOCK_SIZE;

/** The BAT as a typed view: entry = absolute sector of the block, or BAT_UNUSED. */
export class Bat {
  readonly entries: Uint32Array;
  constructor(entries: Uint32Array) {
    this.entries = entries;
  }
  static empty(count: number): Bat {
    return new Bat(new Uint32Array(count).fill(BAT_UNUSED));
  }
  static decode(buf: Uint8Array, count: number): Bat {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
    const e = new Uint32Array(count);
    for (let i = 0; i < count; i++) e[i] = b.readUInt32BE(i * 4);
    return new Bat(e);
  }
  get length(): number {
    return this.entries.length;
  }
  has(i: number): boolean {
    return i < this.entries.length && this.entries[i] !== BAT_UNUSED;
  }
  /** Byte offset of block i's bitmap, or undefined. */
  offset(i: number): number | undefined {
    return this.has(i) ? this.entries[i] * SECTOR_SIZE : undefined;
  }
  /** Indexes of allocated blocks, ascending. */
  present(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.entries.length; i++) if (this.entries[i] !== BAT_UNUSED) out.push(i);
    return out;
  }
  /** Encoded to its on-disk size (padding filled with 0xFF, i.e. unused entries). */
  encode(): Buffer {
    const b = Buffer.alloc(batSize(this.entries.length), 0xff);
    for (let i = 0; i < this.entries.length; i++) b.writeUInt32BE(this.entries[i], i * 4);
    return b;
  }
}

/** Sector bitmap helpers: sector s ↔ byte s>>3, mask 0x80>>(s&7) (MSB first). */
export function bitmapHas(bitmap: Uint8Array, sector: number): boolean {
  return (bitmap[sector >> 3] & (0x80 >> (sector & 7))) !== 0;
}

export function bitmapIsFull(bitmap: Uint8Array): boolean {
  for (let i = 0; i < SECTORS_PER_BLOCK / 8; i++) if (bitmap[i] !== 0xff) return false;
  return true;
}

export function fullBitmap(): Buffer {
  return Buffer.alloc(BITMAP_SIZE, 0xff);
}

/** Zeroes the sectors of `data` whose bit is clear (what a dynamic disk reads there). */
export function applyBitmapZeroes(bitmap: Uint8Array, data: Buffer): void {
  if (bitmapIsFull(bitmap)) return;
  for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
    if (!bitmapHas(bitmap, s)) data.fill(0, s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE);
  }
}

const ZERO_BLOCK = Buffer.alloc(VHD_BLOCK_SIZE);

/** True when every byte is zero (memcmp against a shared zero block). */
export function isZero(buf: Uint8Array): boolean {
  for (let o = 0; o < buf.length; o += VHD_BLOCK_SIZE) {
    const part = buf.subarray(o, Math.min(buf.length, o + VHD_BLOCK_SIZE));
    if (Buffer.compare(part, ZERO_BLOCK.subarray(0, part.length)) !== 0) return false;
  }
  return true;
}
