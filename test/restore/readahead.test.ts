// The read-ahead in front of a restore's chain stream: same blocks, at most `depth` read early, an
// error surfaces at the block it belongs to.
import { describe, expect, it } from 'vitest';
import { readAhead } from '../../activities/restore-readahead';
import type { BlockSource } from '../../formats/vhd';

function counting(blocks: number[], failAt?: number) {
  const started: number[] = [];
  const src: BlockSource = {
    size: 100 * 2 * 1024 * 1024,
    blocks,
    readBlock: async (i) => {
      started.push(i);
      if (i === failAt) throw new Error(`block ${i} unreadable`);
      return Buffer.from([i]);
    },
  };
  return { src, started };
}

describe('readAhead', () => {
  it('gives every block in order, reading at most depth ahead', async () => {
    const { src, started } = counting([1, 3, 5, 7, 9, 11]);
    const ahead = readAhead(src, 2);
    const got: number[] = [];
    for (const b of src.blocks) {
      got.push((await ahead.readBlock(b))[0]);
      const consumed = got.length;
      expect(started.length).toBeLessThanOrEqual(consumed + 2);
    }
    expect(got).toEqual([1, 3, 5, 7, 9, 11]);
    expect(started).toEqual([1, 3, 5, 7, 9, 11]); // each read once
  });

  it('an error is thrown for the block that failed, not before', async () => {
    const { src } = counting([0, 1, 2, 3], 2);
    const ahead = readAhead(src, 3);
    expect((await ahead.readBlock(0))[0]).toBe(0);
    expect((await ahead.readBlock(1))[0]).toBe(1);
    await expect(ahead.readBlock(2)).rejects.toThrow('block 2 unreadable');
  });
});
