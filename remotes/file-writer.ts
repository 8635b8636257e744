// How a local remote writes a big file (a disk export, an XVA): the stream's chunks are gathered
// into large, aligned buffers written at their offsets while the next buffer fills, and the data is
// flushed to the disk as it goes, so the fsync before the rename (remotes/local.ts) has little left
// to do. A 2 GiB backup then costs about what the network and the disk take side by side, not one
// after the other (curl then sync). Memory: two buffers, whatever the file's size.
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Bytes per write: a multiple of every page and block size; two of them per open file. */
export const WRITE_BUFFER_SIZE = 4 * 1024 * 1024;
/** Written bytes after which the data is flushed in the background (one flush at a time). */
export const FLUSH_EVERY = 64 * 1024 * 1024;

export class FileWriter extends Writable {
  private buffers: Buffer[] = [];
  private current = 0;
  private filled = 0;
  /** file offset of the current buffer */
  private offset = 0;
  /** the other buffer's write, if not done */
  private writing: Promise<void> | undefined;
  private unflushed = 0;
  private flushing: Promise<void> | undefined;
  /** the first failed write or flush (Linux reports a write-back error once: it is kept for the end) */
  private failure: unknown;

  constructor(
    private readonly handle: FileHandle,
    private readonly options: { bufferSize?: number; flushEvery?: number } = {},
  ) {
    super({ highWaterMark: options.bufferSize ?? WRITE_BUFFER_SIZE });
  }

  private get size(): number {
    return this.options.bufferSize ?? WRITE_BUFFER_SIZE;
  }

  private readonly fail = (error: unknown) => {
    this.failure ??= error;
  };

  /** The previous buffer is written (or its failure thrown): its memory may be reused. */
  private async settled(): Promise<void> {
    await this.writing;
    if (this.failure !== undefined) throw this.failure;
  }

  private buffer(i: number): Buffer {
    // Allocated on first use (a small file never fills its pages), kept for the file's life.
    this.buffers[i] ??= Buffer.allocUnsafeSlow(this.size);
    return this.buffers[i];
  }

  /** Starts writing the current buffer (after the previous write is done) and switches to the other one. */
  private async rotate(): Promise<void> {
    await this.settled();
    const data = this.buffer(this.current).subarray(0, this.filled);
    this.writing = this.writeAt(data, this.offset).catch(this.fail);
    this.offset += this.filled;
    this.filled = 0;
    this.current = 1 - this.current;
  }

  private async writeAt(data: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
    this.unflushed += data.length;
    if (this.unflushed >= (this.options.flushEvery ?? FLUSH_EVERY) && this.flushing === undefined) {
      this.unflushed = 0;
      this.flushing = this.handle
        .datasync()
        .catch(this.fail)
        .finally(() => {
          this.flushing = undefined;
        });
    }
  }

  private async put(chunk: Buffer): Promise<void> {
    let o = 0;
    while (o < chunk.length) {
      const n = Math.min(this.size - this.filled, chunk.length - o);
      chunk.copy(this.buffer(this.current), this.filled, o, o + n);
      this.filled += n;
      o += n;
      if (this.filled === this.size) await this.rotate();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.put(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const end = async () => {
      if (this.filled > 0) await this.rotate();
      await this.settled();
      await this.flushing;
      if (this.failure !== undefined) throw this.failure;
    };
    end().then(() => callback(), callback);
  }
}
