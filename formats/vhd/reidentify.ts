// A VHD stream with a new identity: what a backup writes from XAPI's export. XAPI gives each export
// a random UUID and names a parent on its SR; on a remote the file must carry the snapshot VDI's
// UUID and point at the previous backup file (xo-backups.md §5.2), so the chain links by UUID.
import { Readable } from 'node:stream';
import { FOOTER_SIZE, VHD_BLOCK_SIZE } from './constants';
import { VhdError } from './errors';
import { encodeFooter } from './footer';
import { computeLayout } from './layout';
import type { ParentRef } from './source';
import { readVhdStream, type VhdStreamItem } from './stream-reader';
import { encodeMetadata } from './writer';

/**
 * Re-writes a VHD stream (e.g. `export_raw_vdi?format=vhd`) with our layout and the given identity:
 * footer UUID / timestamp, and, when `parent` is given, a differencing disk pointing at it (else
 * dynamic). Blocks and their sector bitmaps pass through one at a time. The input's trailing footer
 * is checked before the output's footer is emitted, so a cut export fails the output stream instead
 * of producing a complete-looking file. Blocks must come in index order (as XAPI sends them).
 */
export async function reidentifyVhdStream(
  input: Readable,
  identity: { uuid: string; timestamp?: Date; parent?: ParentRef },
  name = 'export',
): Promise<{ stream: Readable; blocks: number; size: number }> {
  const items = readVhdStream(input, name);
  const first = await items.next();
  if (first.done || first.value.type !== 'header') {
    await items.return(undefined);
    throw new VhdError('TRUNCATED', 'no VHD header', name);
  }
  const { footer, blocks } = first.value;
  let layout: ReturnType<typeof computeLayout>;
  try {
    layout = computeLayout(footer.currentSize, blocks, identity);
  } catch (e) {
    await items.return(undefined);
    if (e instanceof VhdError) throw new VhdError(e.code, e.problem, name);
    throw e;
  }
  async function* generate(): AsyncGenerator<Buffer> {
    yield encodeMetadata(layout);
    let n = 0;
    for (;;) {
      const next: IteratorResult<VhdStreamItem> = await items.next();
      if (next.done) break;
      const item = next.value;
      if (item.type !== 'block') continue;
      if (blocks[n] !== item.index) {
        throw new VhdError(
          'BAD_FIELD',
          `block ${item.index} out of index order (expected ${blocks[n]})`,
          name,
        );
      }
      n++;
      yield item.bitmap;
      yield item.data;
    }
    if (n !== blocks.length)
      throw new VhdError('TRUNCATED', `${n} of ${blocks.length} blocks received`, name);
    const f = encodeFooter(layout.footer);
    if (f.length !== FOOTER_SIZE) throw new Error('footer size');
    yield f;
  }
  const stream = Readable.from(generate(), { objectMode: false, highWaterMark: VHD_BLOCK_SIZE });
  stream.on('close', () => {
    void items.return(undefined);
  });
  return { stream, blocks: blocks.length, size: footer.currentSize };
}
