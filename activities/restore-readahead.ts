// Reads a block source ahead of its consumer: while one block is being sent, the next `depth` are
// read (from a VHD chain: one file read each), so disk reads overlap the network. At most `depth`
// blocks are held.
import type { BlockSource } from '../formats/vhd';

export function readAhead(src: BlockSource, depth = 4): BlockSource {
  const order = [...src.blocks];
  const position = new Map(order.map((b, i) => [b, i]));
  const pending = new Map<number, Promise<Buffer>>();
  const start = (i: number) => {
    if (i >= order.length || pending.has(order[i])) return;
    const p = src.readBlock(order[i]);
    p.catch(() => {}); // surfaced when the consumer asks for it
    pending.set(order[i], p);
  };
  return {
    size: src.size,
    blocks: src.blocks,
    readBlock(index) {
      const at = position.get(index);
      if (at === undefined) return src.readBlock(index);
      const p = pending.get(index) ?? src.readBlock(index);
      pending.delete(index);
      for (let k = 1; k <= depth; k++) start(at + k);
      return p;
    },
  };
}
