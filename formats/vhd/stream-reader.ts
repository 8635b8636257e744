import type { Readable } from 'node:stream';
import { applyBitmapZeroes, Bat, batSize, blockCount, STORED_BLOCK_SIZE } from './bat';
import { ByteReader } from './byte-reader';
import { BITMAP_SIZE, DiskType, FOOTER_SIZE, HEADER_SIZE, VHD_BLOCK_SIZE } from './constants';
import { VhdError } from './errors';
import { decodeFooter, type VhdFooter } from './footer';
import { decodeHeader, type VhdHeader } from './header';

export type VhdStreamItem =
  | { type: 'header'; footer: VhdFooter; header: VhdHeader; bat: Bat; blocks: number[] }
  | {
      type: 'block';
      index: number;
      /** 2 MiB. For a dynamic disk, sectors whose bitmap bit is clear are zeroed. */
      data: Buffer;
      /** The block's sector bitmap (all ones for XAPI and for us). */
      bitmap: Buffer;
    };

/**
 * Reads a VHD byte stream (dynamic or differencing, e.g. XAPI's `export_raw_vdi?format=vhd`):
 * first the header item, then the blocks in stream order (= index order for XAPI), then checks that
 * the stream ends with a footer equal to the first. Forward only; holds one block at a time.
 */
export async function* readVhdStream(input: Readable, name?: string): AsyncGenerator<VhdStreamItem> {
  const r = new ByteReader(input);
  const fail = (code: ConstructorParameters<typeof VhdError>[0], problem: string): never => {
    throw new VhdError(code, problem, name);
  };
  try {
    const fb = await r.read(FOOTER_SIZE);
    if (fb.length < FOOTER_SIZE)
      fail('TRUNCATED', `stream ended after ${fb.length} bytes, in the footer copy`);
    let footer: VhdFooter;
    try {
      footer = decodeFooter(fb, 'footer copy');
    } catch (e) {
      if (e instanceof VhdError) fail(e.code, e.problem);
      throw e;
    }
    footer = footer!;
    if (footer.diskType === DiskType.fixed)
      fail('UNSUPPORTED', 'a fixed VHD cannot be streamed (no footer copy)');
    const dataOffset = footer.dataOffset!;
    if (dataOffset < FOOTER_SIZE) fail('BAD_FIELD', `data offset ${dataOffset} inside the footer copy`);
    await skipTo(r, dataOffset, 'dynamic header', fail);
    const hb = await r.read(HEADER_SIZE);
    if (hb.length < HEADER_SIZE) fail('TRUNCATED', 'stream ended in the dynamic header');
    let header: VhdHeader;
    try {
      header = decodeHeader(hb);
    } catch (e) {
      if (e instanceof VhdError) fail(e.code, e.problem);
      throw e;
    }
    header = header!;
    const needed = blockCount(footer.currentSize);
    if (header.maxTableEntries < needed) {
      fail('BAD_FIELD', `BAT has ${header.maxTableEntries} entries, the size needs ${needed}`);
    }
    if (header.maxTableEntries > 1 << 24) fail('BAD_FIELD', `absurd BAT size ${header.maxTableEntries}`);
    if (header.tableOffset < r.position) {
      fail(
        'BAD_FIELD',
        `table offset ${header.tableOffset} is before the end of the header (streams are forward only)`,
      );
    }
    await skipTo(r, header.tableOffset, 'BAT', fail);
    const bb = await r.read(batSize(header.maxTableEntries));
    if (bb.length < header.maxTableEntries * 4) fail('TRUNCATED', 'stream ended in the BAT');
    const bat = Bat.decode(bb, header.maxTableEntries);
    const order = bat
      .present()
      .map((index) => ({ index, offset: bat.offset(index)! }))
      .sort((a, b) => a.offset - b.offset);
    for (const o of order) {
      if (o.index >= needed) fail('BAD_FIELD', `block ${o.index} is allocated beyond the disk size`);
    }
    yield { type: 'header', footer, header, bat, blocks: order.map((o) => o.index).sort((a, b) => a - b) };
    let prevEnd = r.position;
    for (const { index, offset } of order) {
      if (offset < prevEnd)
        fail('BAT_OVERLAP', `block ${index} at offset ${offset} overlaps metadata or another block`);
      await skipTo(r, offset, `block ${index}`, fail);
      const bitmap = await r.read(BITMAP_SIZE);
      const data = await r.read(VHD_BLOCK_SIZE);
      if (bitmap.length < BITMAP_SIZE || data.length < VHD_BLOCK_SIZE) {
        fail('TRUNCATED', `stream ended in block ${index} (BAT entry past end of stream)`);
      }
      if (footer.diskType === DiskType.dynamic) applyBitmapZeroes(bitmap, data);
      prevEnd = offset + STORED_BLOCK_SIZE;
      yield { type: 'block', index, data, bitmap: Buffer.from(bitmap) };
    }
    const { tail } = await r.drainKeepingTail(FOOTER_SIZE);
    if (tail.length < FOOTER_SIZE) fail('TRUNCATED', 'stream ended without the trailing footer');
    let trailing: VhdFooter;
    try {
      trailing = decodeFooter(tail, 'trailing footer');
    } catch (e) {
      if (e instanceof VhdError) fail(e.code, e.problem);
      throw e;
    }
    if (!encodeFooterEqual(trailing!, footer))
      fail('BAD_FIELD', 'trailing footer differs from the footer copy');
  } finally {
    await r.close();
  }
}

function encodeFooterEqual(a: VhdFooter, b: VhdFooter): boolean {
  return a.uuid === b.uuid && a.currentSize === b.currentSize && a.diskType === b.diskType;
}

async function skipTo(
  r: ByteReader,
  offset: number,
  what: string,
  fail: (code: 'TRUNCATED' | 'BAD_FIELD', problem: string) => never,
): Promise<void> {
  if (offset < r.position)
    fail('BAD_FIELD', `${what} at offset ${offset} is behind the stream position ${r.position}`);
  const want = offset - r.position;
  const got = await r.skip(want);
  if (got < want) fail('TRUNCATED', `stream ended before the ${what} at offset ${offset}`);
}
