import { execFile } from 'node:child_process';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BLOCK_SIZE, type BlockStore, ZERO_BLOCK } from './blockstore';
import { seededBytes, seededIndices } from './random';

/** Fills `count` seeded-random blocks of a VDI with seeded-random bytes; returns their indices. */
export async function writeRandomBlocks(
  store: BlockStore,
  vdi: string,
  virtualSize: number,
  count: number,
  seed: string | number,
): Promise<number[]> {
  const nblocks = Math.ceil(virtualSize / BLOCK_SIZE);
  const indices = seededIndices(seed, count, nblocks);
  for (const i of indices) {
    const data = seededBytes(seed, i, BLOCK_SIZE);
    const tail = virtualSize - i * BLOCK_SIZE;
    if (tail < BLOCK_SIZE) data.fill(0, tail);
    await store.writeBlock(vdi, i, data);
  }
  return indices;
}

/** Builds an ext4 filesystem from a folder (`mke2fs -d`) and writes its non-zero blocks. */
export async function writeExt4FromFolder(
  store: BlockStore,
  vdi: string,
  virtualSize: number,
  folder: string,
): Promise<void> {
  const img = join(
    tmpdir(),
    `xcpb-sim-ext4-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}.img`,
  );
  try {
    const fh = await open(img, 'w');
    await fh.truncate(virtualSize);
    await fh.close();
    await promisify(execFile)('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', folder, img]);
    await writeImageFile(store, vdi, virtualSize, img);
  } finally {
    await rm(img, { force: true });
  }
}

/**
 * Copies a raw disk image into a VDI (its non-zero blocks only, so a sparse image stays sparse).
 * An image larger than the disk is refused; a smaller one leaves the rest zero.
 */
export async function writeImageFile(
  store: BlockStore,
  vdi: string,
  virtualSize: number,
  path: string,
): Promise<void> {
  const src = await open(path, 'r');
  try {
    const size = (await src.stat()).size;
    if (size > virtualSize) {
      throw new Error(`disk image ${path} (${size} bytes) is larger than the disk (${virtualSize} bytes)`);
    }
    const buf = Buffer.alloc(BLOCK_SIZE);
    for (let i = 0; i * BLOCK_SIZE < size; i++) {
      buf.fill(0);
      await src.read(buf, 0, BLOCK_SIZE, i * BLOCK_SIZE);
      if (!buf.equals(ZERO_BLOCK)) await store.writeBlock(vdi, i, Buffer.from(buf));
    }
  } finally {
    await src.close();
  }
}

/** Every how many 2 MiB blocks of a memory image hold data (the rest stays sparse). */
export const MEMORY_IMAGE_STRIDE = 8;

/**
 * Fills a suspend VDI with a stand-in for the VM's memory: seeded 4 KiB pages at the start of the
 * first, the last and every 8th block, so that it holds real, VM-specific bytes without writing
 * the VM's whole memory size.
 */
export async function writeMemoryImage(
  store: BlockStore,
  vdi: string,
  size: number,
  seed: string,
): Promise<void> {
  const n = Math.ceil(size / BLOCK_SIZE);
  for (let i = 0; i < n; i++) {
    if (i % MEMORY_IMAGE_STRIDE !== 0 && i !== n - 1) continue;
    await store.writeBytes(vdi, i * BLOCK_SIZE, seededBytes(`${seed}:memory`, i, 4096));
  }
}
