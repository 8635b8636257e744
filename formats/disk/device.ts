// A read-only random-access disk: what partition tables, volume managers and filesystem readers
// read through. Implementations: a VHD chain (vhd-chain-device.ts), a raw image file, a slice of
// another device (a partition, a logical volume). Reads are cached by block in `cachedDevice`.
import { type FileHandle, open } from 'node:fs/promises';

export interface BlockDevice {
  /** Bytes. */
  readonly size: number;
  /** Exactly `length` bytes at `offset`; RangeError outside the device. */
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

export class DiskReadError extends Error {
  override readonly name = 'DiskReadError';
}

export function checkRange(size: number, offset: number, length: number, what = 'device'): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid read of ${length} bytes at ${offset}`);
  }
  if (offset + length > size) {
    throw new RangeError(`read of ${length} bytes at ${offset} is past the end of the ${size}-byte ${what}`);
  }
}

/** A window of another device (a partition, a linear logical volume). Closing it leaves the parent open. */
export function sliceDevice(parent: BlockDevice, start: number, size: number): BlockDevice {
  if (start < 0 || size < 0 || start + size > parent.size) {
    throw new RangeError(`slice [${start}, ${start + size}) is outside the ${parent.size}-byte device`);
  }
  return {
    size,
    read: (offset, length) => {
      checkRange(size, offset, length, 'volume');
      return parent.read(start + offset, length);
    },
    close: async () => {},
  };
}

/** Pieces of other devices laid end to end (an LVM logical volume made of several segments). */
export function concatDevice(parts: { device: BlockDevice; start: number; size: number }[]): BlockDevice {
  const ends: number[] = [];
  let total = 0;
  for (const p of parts) {
    total += p.size;
    ends.push(total);
  }
  return {
    size: total,
    async read(offset, length) {
      checkRange(total, offset, length, 'volume');
      const out = Buffer.alloc(length);
      let done = 0;
      let i = 0;
      while (done < length) {
        const pos = offset + done;
        while (ends[i] <= pos) i++;
        const partStart = ends[i] - parts[i].size;
        const n = Math.min(length - done, ends[i] - pos);
        (await parts[i].device.read(parts[i].start + pos - partStart, n)).copy(out, done);
        done += n;
      }
      return out;
    },
    close: async () => {},
  };
}

/** A raw disk image file (tests, benchmarks, `dd`-style baselines). */
export async function openRawDevice(path: string): Promise<BlockDevice> {
  const fh: FileHandle = await open(path, 'r');
  const size = (await fh.stat()).size;
  return {
    size,
    async read(offset, length) {
      checkRange(size, offset, length);
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new DiskReadError(`${path}: unexpected end of file at ${offset + done}`);
        done += bytesRead;
      }
      return buf;
    },
    close: () => fh.close(),
  };
}

export interface BlockReader {
  readonly size: number;
  readonly blockSize: number;
  /** Block `index` (the last one may be short of blockSize only if size says so: callers clip). */
  readBlock(index: number): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * A device over a block reader with an LRU cache of `cacheBlocks` blocks (memory bound:
 * cacheBlocks × blockSize). Concurrent reads of the same block share one load.
 */
export function cachedDevice(reader: BlockReader, cacheBlocks = 16): BlockDevice {
  const cache = new Map<number, Promise<Buffer>>();
  const load = (i: number): Promise<Buffer> => {
    const hit = cache.get(i);
    if (hit) {
      cache.delete(i);
      cache.set(i, hit);
      return hit;
    }
    const p = reader.readBlock(i);
    cache.set(i, p);
    p.catch(() => cache.delete(i));
    while (cache.size > cacheBlocks) cache.delete(cache.keys().next().value as number);
    return p;
  };
  const bs = reader.blockSize;
  return {
    size: reader.size,
    async read(offset, length) {
      checkRange(reader.size, offset, length);
      const first = Math.floor(offset / bs);
      const within = offset - first * bs;
      if (within + length <= bs) {
        const block = await load(first);
        return Buffer.from(block.subarray(within, within + length));
      }
      const out = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const pos = offset + done;
        const i = Math.floor(pos / bs);
        const o = pos - i * bs;
        const n = Math.min(length - done, bs - o);
        (await load(i)).copy(out, done, o, o + n);
        done += n;
      }
      return out;
    },
    close: async () => {
      cache.clear();
      await reader.close();
    },
  };
}
