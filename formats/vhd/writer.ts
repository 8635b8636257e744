import { Readable } from 'node:stream';
import { fullBitmap } from './bat';
import { FOOTER_SIZE, HEADER_SIZE, VHD_BLOCK_SIZE } from './constants';
import { VhdError } from './errors';
import { encodeFooter } from './footer';
import { encodeHeader } from './header';
import { computeLayout, type VhdLayout } from './layout';
import type { BlockSource, ParentRef, VhdIdentity } from './source';

/** Metadata bytes from offset 0 to the first block: footer copy, header, locator data, BAT. */
export function encodeMetadata(layout: VhdLayout): Buffer {
  const head = Buffer.alloc(layout.dataStart);
  encodeFooter(layout.footer).copy(head, 0);
  encodeHeader(layout.header).copy(head, FOOTER_SIZE);
  for (const l of layout.locatorData) l.data.copy(head, l.offset);
  layout.bat.encode().copy(head, layout.header.tableOffset);
  if (FOOTER_SIZE + HEADER_SIZE > layout.dataStart) throw new Error('layout overlaps');
  return head;
}

async function* generate(src: BlockSource, layout: VhdLayout): AsyncGenerator<Buffer> {
  yield encodeMetadata(layout);
  const bitmap = fullBitmap();
  for (const index of src.blocks) {
    const data = await src.readBlock(index);
    if (data.length > VHD_BLOCK_SIZE) {
      throw new VhdError(
        'BAD_FIELD',
        `block ${index}: source returned ${data.length} bytes (more than 2 MiB)`,
      );
    }
    yield bitmap;
    yield data;
    if (data.length < VHD_BLOCK_SIZE) yield Buffer.alloc(VHD_BLOCK_SIZE - data.length);
  }
  yield encodeFooter(layout.footer);
}

/**
 * A VHD byte stream (dynamic, or differencing when `parent` is given) of the blocks of `src`,
 * in XAPI's streamable layout: footer copy, header, [locator], BAT, blocks in index order
 * (bitmap all ones + 2 MiB), footer. Only one block is held at a time.
 */
export function createVhdStream(src: BlockSource, opts: VhdIdentity & { parent?: ParentRef } = {}): Readable {
  const layout = computeLayout(src.size, src.blocks, opts);
  return Readable.from(generate(src, layout), { objectMode: false, highWaterMark: VHD_BLOCK_SIZE });
}

/**
 * The same VHD as the pieces it is made of (headers, BAT, bitmap, block data), for a writer that
 * sends them on as they come (the simulator's exports) without a stream's buffering, which joins
 * (copies) what it holds when read.
 */
export function vhdPieces(
  src: BlockSource,
  opts: VhdIdentity & { parent?: ParentRef } = {},
): AsyncGenerator<Buffer> {
  return generate(src, computeLayout(src.size, src.blocks, opts));
}

/** Length in bytes of the stream createVhdStream would produce (e.g. for Content-Length). */
export function vhdStreamLength(size: number, blocks: readonly number[], parent?: ParentRef): number {
  return computeLayout(size, blocks, { parent }).fileSize;
}
