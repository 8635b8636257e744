import type { BlockSource } from '../../formats/vhd';

/**
 * A BlockSource that, when block `blocks[k]` is asked for, already reads the next `depth` listed
 * blocks, so a writer that consumes blocks in order (VHD, XVA) never waits on the disk between two
 * blocks. Holds at most `depth + 1` blocks.
 */
export function readAhead(src: BlockSource, depth = 3): BlockSource {
  const position = new Map(src.blocks.map((b, k) => [b, k]));
  const pending = new Map<number, Promise<Buffer>>();
  const start = (index: number) => {
    if (!pending.has(index)) {
      // Through a promise even when readBlock throws at once (a VDI destroyed under the export):
      // the failure then reaches the reader of this block, never an unhandled rejection.
      const p = Promise.resolve().then(() => src.readBlock(index));
      p.catch(() => {});
      pending.set(index, p);
    }
  };
  return {
    size: src.size,
    blocks: src.blocks,
    readBlock(index: number): Promise<Buffer> {
      start(index);
      const k = position.get(index);
      if (k !== undefined)
        for (let j = k + 1; j <= k + depth && j < src.blocks.length; j++) start(src.blocks[j]);
      const p = pending.get(index)!;
      pending.delete(index);
      return p;
    },
  };
}
