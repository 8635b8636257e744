// At most `max` open file handles over any number of files: a chain of 200 VHDs is read without
// holding 200 descriptors. Handles are opened on first use; room is made first, by closing the
// least recently used idle handle and waiting for that close, so the bound holds at every moment
// (a busy handle is never closed: with `max` reads in flight on distinct files, one more waits).
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
  private readonly closing = new Set<Promise<void>>();
  constructor(private readonly max = 16) {}

  async read(path: string, offset: number, length: number): Promise<Buffer> {
    const slot = await this.acquire(path);
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
    }
  }

  async file(path: string): Promise<RangedFile> {
    const slot = await this.acquire(path);
    let size: number;
    try {
      size = (await (await slot.handle).stat()).size;
    } finally {
      slot.busy--;
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

  /** The slot of `path`, opened if need be, marked busy (the caller ends with `busy--`). */
  private async acquire(path: string): Promise<Slot> {
    for (;;) {
      const open_ = this.slots.get(path);
      if (open_) {
        this.slots.delete(path); // re-insert: most recently used last
        this.slots.set(path, open_);
        open_.busy++;
        return open_;
      }
      if (this.slots.size < this.max && this.closing.size === 0) break;
      this.makeRoom();
      // wait for the closes under way (or, every handle busy, for a read to end) and look again
      await (this.closing.size > 0 ? Promise.all(this.closing) : new Promise((r) => setTimeout(r, 1)));
    }
    const handle = open(path, 'r');
    const slot: Slot = { handle, busy: 1 };
    handle.catch(() => this.slots.delete(path));
    this.slots.set(path, slot);
    return slot;
  }

  /** Closes least recently used idle handles until one more can be opened within the bound. */
  private makeRoom(): void {
    for (const [path, slot] of this.slots) {
      if (this.slots.size < this.max) break;
      if (slot.busy > 0) continue;
      this.slots.delete(path);
      const closed: Promise<void> = slot.handle
        .then((fh) => fh.close())
        .catch(() => {})
        .finally(() => this.closing.delete(closed));
      this.closing.add(closed);
    }
  }
}
