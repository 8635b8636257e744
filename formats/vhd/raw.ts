import { open } from 'node:fs/promises';
import { isZero } from './bat';
import { VHD_BLOCK_SIZE } from './constants';
import type { BlockSource } from './source';

/**
 * A raw disk image as a BlockSource of its non-zero 2 MiB blocks. Scans the file once to list them
 * (one block in memory at a time), then reads each again on demand. Close when done.
 */
export async function openRawBlockSource(file: string): Promise<BlockSource & { close(): Promise<void> }> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const blocks: number[] = [];
    const buf = Buffer.alloc(VHD_BLOCK_SIZE);
    const count = Math.ceil(size / VHD_BLOCK_SIZE);
    for (let i = 0; i < count; i++) {
      const len = Math.min(VHD_BLOCK_SIZE, size - i * VHD_BLOCK_SIZE);
      const { bytesRead } = await fh.read(buf, 0, len, i * VHD_BLOCK_SIZE);
      if (!isZero(buf.subarray(0, bytesRead))) blocks.push(i);
    }
    return {
      size,
      blocks,
      async readBlock(i: number): Promise<Buffer> {
        const out = Buffer.alloc(VHD_BLOCK_SIZE);
        const len = Math.min(VHD_BLOCK_SIZE, size - i * VHD_BLOCK_SIZE);
        await fh.read(out, 0, len, i * VHD_BLOCK_SIZE);
        return out;
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Writes a BlockSource to a raw file: present blocks at their offsets, holes elsewhere (sparse). */
export async function writeRawFile(src: BlockSource, file: string): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.truncate(src.size);
    for (const i of src.blocks) {
      const data = await src.readBlock(i);
      const len = Math.min(VHD_BLOCK_SIZE, src.size - i * VHD_BLOCK_SIZE);
      if (isZero(data.subarray(0, len))) continue;
      await fh.write(data, 0, len, i * VHD_BLOCK_SIZE);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}
