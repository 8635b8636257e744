// A VHD stream with a new identity: what a backup writes from XAPI's export. XAPI gives each export
// a random UUID and names a parent on its SR; on a remote the file must carry the snapshot VDI's
// UUID and point at the previous backup file (xo-backups.md §5.2), so the chain links by UUID.
//
// Only the metadata changes (footer, header, parent locator, BAT), so the blocks are not parsed or
// re-encoded: the input's chunks are forwarded as slices (no copy, no allocation per block) while a
// cursor checks that every block arrives whole, where the BAT says, in index order, and that the
// stream ends with its footer. This is the backup's hot path: its cost is what a backup adds to
// curl (bench/backup-datapath.ts).
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import { applyBitmapZeroes, Bat, batSize, bitmapIsFull, blockCount, fullBitmap } from './bat';
import { BITMAP_SIZE, DiskType, FOOTER_SIZE, HEADER_SIZE, VHD_BLOCK_SIZE } from './constants';
import { VhdError, type VhdProblemCode } from './errors';
import { decodeFooter, encodeFooter, type VhdFooter } from './footer';
import { decodeHeader } from './header';
import { computeLayout, type VhdLayout } from './layout';
import type { ParentRef } from './source';
import { encodeMetadata } from './writer';

interface Identity {
  uuid: string;
  timestamp?: Date;
  parent?: ParentRef;
}

/** The next input range the cursor wants: bytes before `at` are a gap (skipped). */
type Step =
  /** gathered (small: footer, header, BAT, a sector bitmap, or a block to repair), then `done` */
  | { kind: 'collect'; at: number; length: number; what: string; done: (bytes: Buffer) => void }
  /** forwarded as it comes (a block's data) */
  | { kind: 'pass'; at: number; length: number; what: string; done: () => void }
  /** everything after the last block: only its last 512 bytes (the trailing footer) are kept */
  | { kind: 'tail' };

class Fail extends Error {
  constructor(
    readonly code: VhdProblemCode,
    readonly problem: string,
  ) {
    super(problem);
  }
}

/** The input cursor and the output: one instance per export. */
class Reidentify extends Transform {
  /** input bytes consumed */
  private pos = 0;
  private step: Step;
  private parts: Buffer[] = [];
  private have = 0;
  private tail = Buffer.alloc(0);
  private footer?: VhdFooter;
  private layout?: VhdLayout;
  /** blocks in stream order, and how many have passed */
  private order: { index: number; offset: number }[] = [];
  private passed = 0;
  /** settles once the metadata is read (or the stream failed before) */
  readonly metadata: Promise<{ blocks: number; size: number }>;
  private settle!: { resolve: (m: { blocks: number; size: number }) => void; reject: (e: Error) => void };

  constructor(
    private readonly identity: Identity,
    private readonly name: string,
  ) {
    super({ readableHighWaterMark: VHD_BLOCK_SIZE });
    this.metadata = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.metadata.catch(() => {}); // also reported through the stream
    this.step = {
      kind: 'collect',
      at: 0,
      length: FOOTER_SIZE,
      what: 'footer copy',
      done: (b) => this.onFooter(b),
    };
  }

  private fail(code: VhdProblemCode, problem: string): never {
    throw new Fail(code, problem);
  }

  /** Moves the cursor to `step`; streams are forward only, so a range behind the cursor is an error. */
  private next(step: Step, overlap: VhdProblemCode = 'BAD_FIELD'): void {
    if (step.kind !== 'tail' && step.at < this.pos)
      this.fail(
        overlap,
        overlap === 'BAT_OVERLAP'
          ? `${step.what} at offset ${step.at} overlaps metadata or another block`
          : `${step.what} at offset ${step.at} is behind the stream position ${this.pos}`,
      );
    this.step = step;
  }

  private onFooter(b: Buffer): void {
    const footer = decodeFooter(b, 'footer copy');
    if (footer.diskType === DiskType.fixed)
      this.fail('UNSUPPORTED', 'a fixed VHD cannot be streamed (no footer copy)');
    const at = footer.dataOffset!;
    if (at < FOOTER_SIZE) this.fail('BAD_FIELD', `data offset ${at} inside the footer copy`);
    this.footer = footer;
    this.next({
      kind: 'collect',
      at,
      length: HEADER_SIZE,
      what: 'dynamic header',
      done: (h) => this.onHeader(h),
    });
  }

  private onHeader(b: Buffer): void {
    const header = decodeHeader(b);
    const needed = blockCount(this.footer!.currentSize);
    if (header.maxTableEntries < needed)
      this.fail('BAD_FIELD', `BAT has ${header.maxTableEntries} entries, the size needs ${needed}`);
    if (header.maxTableEntries > 1 << 24) this.fail('BAD_FIELD', `absurd BAT size ${header.maxTableEntries}`);
    if (header.tableOffset < this.pos)
      this.fail(
        'BAD_FIELD',
        `table offset ${header.tableOffset} is before the end of the header (streams are forward only)`,
      );
    const entries = header.maxTableEntries;
    this.next({
      kind: 'collect',
      at: header.tableOffset,
      length: batSize(entries),
      what: 'BAT',
      done: (bat) => this.onBat(Bat.decode(bat, entries), needed),
    });
  }

  private onBat(bat: Bat, needed: number): void {
    this.order = bat
      .present()
      .map((index) => ({ index, offset: bat.offset(index)! }))
      .sort((a, b) => a.offset - b.offset);
    const blocks = this.order.map((o) => o.index);
    for (let n = 0; n < blocks.length; n++) {
      if (blocks[n] >= needed) this.fail('BAD_FIELD', `block ${blocks[n]} is allocated beyond the disk size`);
      // Our layout stores blocks in index order: passing them through needs them sent that way (XAPI does).
      if (n > 0 && blocks[n] < blocks[n - 1])
        this.fail('BAD_FIELD', `block ${blocks[n]} out of index order (after ${blocks[n - 1]})`);
    }
    try {
      this.layout = computeLayout(this.footer!.currentSize, blocks, this.identity);
    } catch (e) {
      if (e instanceof VhdError) this.fail(e.code, e.problem);
      throw e;
    }
    this.push(encodeMetadata(this.layout));
    this.settle.resolve({ blocks: blocks.length, size: this.footer!.currentSize });
    this.nextBlock();
  }

  private nextBlock(): void {
    const block = this.order[this.passed];
    if (block === undefined) {
      this.next({ kind: 'tail' });
      return;
    }
    this.next(
      {
        kind: 'collect',
        at: block.offset,
        length: BITMAP_SIZE,
        what: `block ${block.index}`,
        done: (bitmap) => this.onBitmap(block, bitmap),
      },
      'BAT_OVERLAP',
    );
  }

  private onBitmap(block: { index: number; offset: number }, bitmap: Buffer): void {
    const at = block.offset + BITMAP_SIZE;
    const what = `block ${block.index}`;
    const done = () => {
      this.passed++;
      this.nextBlock();
    };
    if (this.footer!.diskType === DiskType.dynamic && !bitmapIsFull(bitmap)) {
      // A dynamic disk reads clear sectors as zeroes; in a differencing file (or for a reader that
      // ignores bitmaps) they would read the parent's data: the rare partial block is made whole.
      this.next({
        kind: 'collect',
        at,
        length: VHD_BLOCK_SIZE,
        what,
        done: (data) => {
          applyBitmapZeroes(bitmap, data);
          this.push(fullBitmap());
          this.push(data);
          done();
        },
      });
      return;
    }
    this.push(bitmap);
    this.next({ kind: 'pass', at, length: VHD_BLOCK_SIZE, what, done });
  }

  private consume(chunk: Buffer): void {
    let o = 0;
    while (o < chunk.length) {
      const s = this.step;
      if (s.kind === 'tail') {
        const rest = chunk.subarray(o);
        this.tail =
          rest.length >= FOOTER_SIZE
            ? Buffer.from(rest.subarray(rest.length - FOOTER_SIZE))
            : Buffer.concat([this.tail, rest]).subarray(-FOOTER_SIZE);
        this.pos += rest.length;
        return;
      }
      if (this.pos < s.at) {
        const skip = Math.min(s.at - this.pos, chunk.length - o);
        o += skip;
        this.pos += skip;
        continue;
      }
      const take = Math.min(s.length - this.have, chunk.length - o);
      const slice = chunk.subarray(o, o + take);
      o += take;
      this.pos += take;
      this.have += take;
      if (s.kind === 'pass') this.push(slice);
      else this.parts.push(slice);
      if (this.have === s.length) {
        // A gathered range is copied out of the input's chunks: they are not kept alive by it.
        const bytes = s.kind === 'collect' ? Buffer.concat(this.parts, s.length) : undefined;
        this.parts = [];
        this.have = 0;
        if (s.kind === 'collect') s.done(bytes!);
        else s.done();
      }
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.consume(chunk);
      cb();
    } catch (e) {
      cb(this.named(e));
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      const s = this.step;
      if (s.kind !== 'tail') {
        if (s.what === 'footer copy')
          this.fail('TRUNCATED', `stream ended after ${this.pos} bytes, in the footer copy`);
        if (s.what === 'dynamic header' || s.what === 'BAT')
          this.fail('TRUNCATED', `stream ended ${this.pos < s.at ? 'before' : 'in'} the ${s.what}`);
        this.fail(
          'TRUNCATED',
          `stream ended in ${s.what} (${this.passed} of ${this.order.length} blocks received)`,
        );
      }
      if (this.tail.length < FOOTER_SIZE) this.fail('TRUNCATED', 'stream ended without the trailing footer');
      const trailing = decodeFooter(this.tail, 'trailing footer');
      const f = this.footer!;
      if (
        trailing.uuid !== f.uuid ||
        trailing.currentSize !== f.currentSize ||
        trailing.diskType !== f.diskType
      )
        this.fail('BAD_FIELD', 'trailing footer differs from the footer copy');
      this.push(encodeFooter(this.layout!.footer));
      cb();
    } catch (e) {
      cb(this.named(e));
    }
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.settle.reject(error ?? new VhdError('TRUNCATED', 'export stopped before its metadata', this.name));
    cb(error);
  }

  /** Every problem as a VhdError naming the export. */
  private named(e: unknown): Error {
    if (e instanceof Fail) return new VhdError(e.code, e.problem, this.name);
    if (e instanceof VhdError) return new VhdError(e.code, e.problem, this.name);
    return e instanceof Error ? e : new Error(String(e));
  }
}

/**
 * Re-writes a VHD stream (e.g. `export_raw_vdi?format=vhd`) with our layout and the given identity:
 * footer UUID / timestamp, and, when `parent` is given, a differencing disk pointing at it (else
 * dynamic). Resolves once the metadata is read; the blocks then pass through untouched. The input's
 * trailing footer is checked before the output's footer is emitted, so a cut export fails the output
 * stream instead of producing a complete-looking file. Blocks must come in index order (as XAPI
 * sends them). Destroying the output destroys the input.
 */
export async function reidentifyVhdStream(
  input: Readable,
  identity: Identity,
  name = 'export',
): Promise<{ stream: Readable; blocks: number; size: number }> {
  const stream = new Reidentify(identity, name);
  // pipe() reads in flowing mode: each of the input's chunks is handed over as is (an async
  // iterator would concatenate what is buffered, a copy per read).
  pipeline(input, stream, () => {});
  try {
    const { blocks, size } = await stream.metadata;
    return { stream, blocks, size };
  } catch (e) {
    stream.destroy();
    input.destroy();
    throw e;
  }
}
