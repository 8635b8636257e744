// How a local remote writes a big file (a disk export, an XVA): write-behind. A chunk is taken at
// once (its write callback called) while fewer than `behind` bytes wait to be written; the queue is
// written by one `pwritev` at a time, the chunks as they are (no copy), up to half the queue each.
//
// Why acknowledge before writing: a Writable announces 'drain' only once everything given to it is
// written. With the queue inside the Writable, a producer that filled it was paused until the whole
// last batch (MiBs) was on the page cache, then given room for one chunk: reading and writing took
// turns. With an XVA the producer is the host's single-threaded zstd writing to the socket, so each
// of those pauses stopped the compressor, never caught up (bench/backup-datapath.ts: the source was
// paused half of the export). Here the producer waits only while the queue is full, and goes on as
// soon as one batch is written, while the next one is being written.
//
// Measured (bench/backup-datapath.ts, `--cpu-prof`): gathering the chunks into aligned 4 MiB
// buffers first cost a copy of every byte (~30% more CPU for the write path) for no gain on the
// page cache, so the chunks are written where they lie. Flushing the data in the background as it
// goes (`flushEvery`) is available but off by default: at 4 GiB it made the zstd XVA backup 2×
// slower (writes wait on pages under write-back, the stall reaches the host's compressor) for no
// clear gain on the delta backup.
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Bytes taken but not yet written before the producer is asked to wait. */
export const WRITE_BEHIND = 8 * 1024 * 1024;

export class FileWriter extends Writable {
  /** file offset of the next write */
  private offset = 0;
  /** chunks taken (their callbacks called) and not yet written, in order */
  private queue: Buffer[] = [];
  /** bytes in `queue` plus the batch being written */
  private pending = 0;
  /** whether the write loop runs, and its end */
  private writing = false;
  private idle: Promise<void> = Promise.resolve();
  /** the callback of a write held back because the queue is full */
  private held: ((error?: Error | null) => void) | undefined;
  private unflushed = 0;
  private flushing: Promise<void> | undefined;
  /** the first failed write or background flush (Linux reports a write-back error once: it is kept) */
  private failure: Error | undefined;

  constructor(
    private readonly handle: FileHandle,
    /**
     * `behind`: bytes taken before they are written (default WRITE_BEHIND);
     * `flushEvery`: written bytes after which the data is flushed in the background (default: never)
     */
    private readonly options: { behind?: number; flushEvery?: number } = {},
  ) {
    // The stream's own buffer only holds what arrives while the queue is full.
    super({ highWaterMark: Math.max(1, Math.floor((options.behind ?? WRITE_BEHIND) / 8)) });
  }

  private get behind(): number {
    return this.options.behind ?? WRITE_BEHIND;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take([chunk], callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    this.take(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  private take(buffers: Buffer[], callback: (error?: Error | null) => void): void {
    if (this.failure !== undefined) {
      callback(this.failure);
      return;
    }
    for (const b of buffers) {
      this.queue.push(b);
      this.pending += b.length;
    }
    if (!this.writing) {
      this.writing = true;
      this.idle = this.writeQueue();
    }
    // Node's Writable gives one write at a time: at most one callback is ever held.
    if (this.pending < this.behind) callback();
    else this.held = callback;
  }

  /** Writes the queue batch after batch until it is empty (or a write failed). */
  private async writeQueue(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.failure === undefined && !this.destroyed) {
        const batch = this.nextBatch();
        let size = 0;
        for (const b of batch) size += b.length;
        try {
          await this.writeAll(batch);
        } catch (error) {
          this.failure ??= error as Error;
        }
        this.pending -= size;
        if (this.held && (this.failure !== undefined || this.pending < this.behind)) {
          const callback = this.held;
          this.held = undefined;
          callback(this.failure);
        }
      }
    } finally {
      // cleared in the same tick as the loop's last check: a chunk taken later starts a new loop
      this.writing = false;
    }
  }

  /** The queue's first chunks, up to half the queue's limit (one at least): the next write. */
  private nextBatch(): Buffer[] {
    const most = Math.max(1, this.behind / 2);
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n].length <= most))
      bytes += this.queue[n++].length;
    return this.queue.splice(0, n);
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    let rest = buffers;
    while (rest.length > 0) {
      const { bytesWritten } = await this.handle.writev(rest, this.offset);
      this.offset += bytesWritten;
      this.unflushed += bytesWritten;
      rest = after(rest, bytesWritten);
    }
    const every = this.options.flushEvery;
    if (every !== undefined && this.unflushed >= every && this.flushing === undefined) {
      this.unflushed = 0;
      this.flushing = this.handle
        .datasync()
        .catch((error) => {
          this.failure ??= error;
        })
        .finally(() => {
          this.flushing = undefined;
        });
    }
    if (this.failure !== undefined) throw this.failure;
  }

  override _final(callback: (error?: Error | null) => void): void {
    const end = async () => {
      // every chunk is taken before _final: the loop's end is the last write (or a failure)
      await this.idle;
      await this.flushing;
      if (this.failure !== undefined) throw this.failure;
    };
    end().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // what was taken but not written is dropped (the write is aborted); a batch in flight ends alone
    this.queue = [];
    this.held = undefined;
    callback(error);
  }
}

/** What is left of `buffers` once their first `n` bytes are written. */
function after(buffers: Buffer[], n: number): Buffer[] {
  let skip = n;
  let i = 0;
  while (i < buffers.length && skip >= buffers[i].length) skip -= buffers[i++].length;
  const rest = buffers.slice(i);
  if (skip > 0 && rest.length > 0) rest[0] = rest[0].subarray(skip);
  return rest;
}
