// How a local remote writes a big file (a disk export, an XVA): the chunks that arrive while a
// write is in flight are written together by the next one (one `pwritev` of up to a few MiB, the
// chunks as they are: no copy).
//
// Measured (bench/backup-datapath.ts, `--cpu-prof`): gathering the chunks into aligned 4 MiB
// buffers first cost a copy of every byte (~30% more CPU for the write path) for no gain on the
// page cache, so the chunks are written where they lie. Flushing the data in the background as it
// goes (`flushEvery`) is available but off by default: at 4 GiB it made the zstd XVA backup 2×
// slower (writes wait on pages under write-back, the stall reaches the host's compressor) for no
// clear gain on the delta backup.
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Bytes gathered while a write is in flight before the producer is asked to wait. */
export const WRITE_GATHER = 4 * 1024 * 1024;

export class FileWriter extends Writable {
  /** file offset of the next write */
  private offset = 0;
  private unflushed = 0;
  private flushing: Promise<void> | undefined;
  /** a failed background flush (Linux reports a write-back error once: it is kept for the end) */
  private failure: unknown;

  constructor(
    private readonly handle: FileHandle,
    /** `flushEvery`: written bytes after which the data is flushed in the background (default: never) */
    private readonly options: { gather?: number; flushEvery?: number } = {},
  ) {
    super({ highWaterMark: options.gather ?? WRITE_GATHER });
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

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const end = async () => {
      await this.flushing;
      if (this.failure !== undefined) throw this.failure;
    };
    end().then(() => callback(), callback);
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
