// At most `max` open file handles over any number of files: a chain of 200 VHDs is read without
// holding 200 descriptors. Handles are opened on first use and the least recently used one is
// closed when the pool is full (only when no read is in flight on it).
import { type FileHandle, open } from 'node:fs/promises';

export interface RangedFile {
  /** For error messages (a path, or a remote path). */
  readonly name: string;
  readonly size: number;
  /** Up to `length` bytes at `offset` (short only at the end of the file). */
  read(offset: number, length: number): Promise<Buffer>;
}

interface Slot {
  handle: Promise<FileHandle>;
  busy: number;
}

export class FilePool {
  private readonly slots = new Map<string, Slot>();
  constructor(private readonly max = 16) {}

  async read(path: string, offset: number, length: number): Promise<Buffer> {
    const slot = this.acquire(path);
    slot.busy++;
    try {
      const fh = await slot.handle;
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === length ? buf : buf.subarray(0, done);
    } finally {
      slot.busy--;
      this.evict();
    }
  }

  async file(path: string): Promise<RangedFile> {
    const slot = this.acquire(path);
    slot.busy++;
    let size: number;
    try {
      size = (await (await slot.handle).stat()).size;
    } finally {
      slot.busy--;
      this.evict();
    }
    return { name: path, size, read: (o, l) => this.read(path, o, l) };
  }

  /** Open handles right now (tests check the bound). */
  get openCount(): number {
    return this.slots.size;
  }

  async close(): Promise<void> {
    const all = [...this.slots.values()];
    this.slots.clear();
    await Promise.all(all.map(async (s) => (await s.handle.catch(() => undefined))?.close()));
  }

  private acquire(path: string): Slot {
    let slot = this.slots.get(path);
    if (slot) {
      this.slots.delete(path); // re-insert: most recently used last
    } else {
      const handle = open(path, 'r');
      slot = { handle, busy: 0 };
      handle.catch(() => this.slots.delete(path));
    }
    this.slots.set(path, slot);
    return slot;
  }

  private evict(): void {
    if (this.slots.size <= this.max) return;
    for (const [path, slot] of this.slots) {
      if (this.slots.size <= this.max) break;
      if (slot.busy > 0) continue;
      this.slots.delete(path);
      slot.handle.then((fh) => fh.close()).catch(() => {});
    }
  }
}
