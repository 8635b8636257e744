import type { Readable } from 'node:stream';

/** Pulls exact byte counts from a Readable, forward only, holding at most what was asked for. */
export class ByteReader {
  private readonly it: AsyncIterator<Buffer | string>;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  /** Bytes consumed so far (the current stream position). */
  position = 0;

  constructor(input: Readable) {
    this.it = input[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const c = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      if (c.length === 0) continue;
      this.chunks.push(c);
      this.buffered += c.length;
    }
  }

  /** Exactly n bytes, or fewer if the stream ended first. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.buffered);
    let out: Buffer;
    if (this.chunks.length > 0 && this.chunks[0].length >= take) {
      out = this.chunks[0].subarray(0, take);
      this.chunks[0] = this.chunks[0].subarray(take);
      if (this.chunks[0].length === 0) this.chunks.shift();
    } else {
      // Gather from several chunks; drop the consumed ones in one splice (no O(n²) shifting).
      out = Buffer.allocUnsafe(take);
      let o = 0;
      let k = 0;
      while (o < take) {
        const c = this.chunks[k];
        const m = Math.min(c.length, take - o);
        c.copy(out, o, 0, m);
        o += m;
        if (m === c.length) k++;
        else this.chunks[k] = c.subarray(m);
      }
      this.chunks.splice(0, k);
    }
    this.buffered -= take;
    this.position += take;
    return out;
  }

  /** Skips n bytes; returns how many were actually skipped. */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      const b = await this.read(Math.min(left, 1 << 20));
      if (b.length === 0) break;
      left -= b.length;
    }
    return n - left;
  }

  /** Reads everything left, keeping only the last `keep` bytes; returns them and the count read. */
  async drainKeepingTail(keep: number): Promise<{ tail: Buffer; total: number }> {
    let tail = Buffer.alloc(0);
    let total = 0;
    for (;;) {
      const b = await this.read(1 << 20);
      if (b.length === 0) break;
      total += b.length;
      tail = Buffer.concat([tail, b]);
      if (tail.length > keep) tail = tail.subarray(tail.length - keep);
    }
    return { tail: Buffer.from(tail), total };
  }

  /** Stops pulling and releases the source. */
  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}
