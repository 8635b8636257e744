// Xen Orchestra's "VHD directory" (vhd-lib VhdDirectory, read for facts): one VHD as a folder of small
// objects, for storage that cannot rewrite a file in place (object stores, encrypted remotes):
//   header                 the 1024-byte dynamic header, raw
//   footer                 the 512-byte footer, raw
//   bat                    a bit array, bit i (most significant bit first) set = block i present;
//                          XO sizes it maxTableEntries bytes
//   chunk-filters.json     filters applied to every object, `["none"]` here (no compression)
//   blocks/<⌊i/1000⌋>/<i mod 1000>   sector bitmap (512 bytes) ‖ 2 MiB of data
// The parent is named by the header's parent unicode name (relative to the child's alias). No I/O
// here but through the `VhdObjectStore` given, so formats/ stays independent of remotes/.

import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { applyBitmapZeroes, blockCount } from './bat';
import type { VhdDisk } from './chain';
import { BITMAP_SIZE, DiskType, VHD_BLOCK_SIZE } from './constants';
import { VhdError } from './errors';
import { decodeFooter, encodeFooter, type VhdFooter } from './footer';
import { decodeHeader, encodeHeader, type VhdHeader } from './header';
import { readAtVia } from './reader';
import { readVhdStream } from './stream-reader';

export interface VhdObjectStore {
  readFile(path: string): Promise<Buffer>;
  writeFile(path: string, data: Buffer | string): Promise<void>;
}

export const VHD_DIRECTORY_FILES = ['header', 'footer', 'bat', 'chunk-filters.json'] as const;
const FILTERS = JSON.stringify(['none']);

/** `blocks/<⌊i/1000⌋>/<i mod 1000>`, relative to the VHD directory. */
export function blockObjectPath(index: number): string {
  return `blocks/${Math.floor(index / 1000)}/${index % 1000}`;
}

export function encodeDirectoryBat(entries: number, present: Iterable<number>): Buffer {
  const bits = Buffer.alloc(Math.max(entries, Math.ceil(entries / 8)));
  for (const i of present) bits[i >> 3] |= 0x80 >> (i & 7);
  return bits;
}

export function directoryBatHas(bits: Uint8Array, index: number): boolean {
  return index >> 3 < bits.length && (bits[index >> 3]! & (0x80 >> (index & 7))) !== 0;
}

export interface VhdDirectoryParts {
  footer: VhdFooter;
  header: VhdHeader;
  blocks: number[];
}

/** Reads a VHD directory's header, footer and BAT (checksums verified by the decoders). */
export async function readVhdDirectoryParts(store: VhdObjectStore, dir: string): Promise<VhdDirectoryParts> {
  const read = async (name: string) => {
    try {
      return await store.readFile(`${dir}/${name}`);
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT')
        throw new VhdError('TRUNCATED', `VHD directory without its ${name}`, dir);
      throw error;
    }
  };
  const filters = await store.readFile(`${dir}/chunk-filters.json`).then(
    (b) => JSON.parse(b.toString()) as unknown[],
    () => [],
  );
  if (filters.some((f) => f !== 'none'))
    throw new VhdError('UNSUPPORTED', `VHD directory compressed with ${JSON.stringify(filters)}`, dir);
  let footer: VhdFooter;
  let header: VhdHeader;
  try {
    footer = decodeFooter(await read('footer'));
    header = decodeHeader(await read('header'));
  } catch (e) {
    if (e instanceof VhdError && e.file === undefined) throw new VhdError(e.code, e.problem, dir);
    throw e;
  }
  const bat = await read('bat');
  const count = blockCount(footer.currentSize);
  const blocks: number[] = [];
  for (let i = 0; i < Math.min(count, header.maxTableEntries); i++)
    if (directoryBatHas(bat, i)) blocks.push(i);
  return { footer, header, blocks };
}

/** A VHD directory as a disk of a chain; `path` is what names it (the alias). */
export async function openVhdDirectory(store: VhdObjectStore, dir: string, path: string): Promise<VhdDisk> {
  const { footer, header, blocks } = await readVhdDirectoryParts(store, dir);
  const present = new Set(blocks);
  const size = footer.currentSize;
  const hasBlock = (i: number) => present.has(i);
  const readBlockRaw = async (i: number) => {
    if (!present.has(i)) return undefined;
    const stored = await store.readFile(`${dir}/${blockObjectPath(i)}`);
    if (stored.length !== BITMAP_SIZE + VHD_BLOCK_SIZE)
      throw new VhdError('TRUNCATED', `block ${i} is ${stored.length} bytes`, path);
    return { bitmap: stored.subarray(0, BITMAP_SIZE), data: stored.subarray(BITMAP_SIZE) };
  };
  const readBlock = async (i: number) => {
    const raw = await readBlockRaw(i);
    if (!raw) return Buffer.alloc(VHD_BLOCK_SIZE);
    applyBitmapZeroes(raw.bitmap, raw.data);
    return raw.data;
  };
  return {
    path,
    footer,
    header,
    size,
    uuid: footer.uuid,
    diskType: footer.diskType,
    blocks: () => [...blocks],
    hasBlock,
    readBlockRaw,
    readBlock,
    readAt: (offset, length) => readAtVia(size, readBlock, offset, length),
    close: async () => {},
  };
}

/** Writes the small files of a VHD directory: BAT, header, footer, filters (blocks are written before). */
export async function writeVhdDirectoryParts(
  store: VhdObjectStore,
  dir: string,
  parts: VhdDirectoryParts,
): Promise<void> {
  // Parent locators point into a file; a directory names its parent by the unicode name alone.
  const header: VhdHeader = { ...parts.header, parentLocators: [] };
  await store.writeFile(`${dir}/bat`, encodeDirectoryBat(header.maxTableEntries, parts.blocks));
  await store.writeFile(`${dir}/header`, encodeHeader(header));
  await store.writeFile(`${dir}/footer`, encodeFooter(parts.footer));
  await store.writeFile(`${dir}/chunk-filters.json`, FILTERS);
}

/**
 * Writes a VHD byte stream (dynamic or differencing, as XAPI exports it) as a VHD directory: every
 * block object first (`concurrency` at a time, so memory stays at that many blocks), then the small
 * files. Returns what it wrote (relative to `dir`), so a failed write can be removed.
 */
export async function writeVhdDirectory(
  store: VhdObjectStore,
  dir: string,
  input: Readable,
  options: {
    concurrency?: number;
    written?: string[];
    name?: string;
    /** The parent's name as this layout calls it (the stream names a parent file). */
    parentName?: (name: string) => string;
  } = {},
): Promise<VhdDirectoryParts> {
  const limit = pLimit(options.concurrency ?? 4);
  const written = options.written ?? [];
  let parts: VhdDirectoryParts | undefined;
  const pending = new Set<Promise<void>>();
  let failure: unknown;
  for await (const item of readVhdStream(input, options.name)) {
    if (failure !== undefined) throw failure;
    if (item.type === 'header') {
      if (item.footer.diskType === DiskType.fixed)
        throw new VhdError('UNSUPPORTED', 'fixed VHD', options.name);
      const header = item.header;
      if (options.parentName && header.parentUnicodeName)
        header.parentUnicodeName = options.parentName(header.parentUnicodeName);
      parts = { footer: item.footer, header, blocks: [] };
      continue;
    }
    const path = blockObjectPath(item.index);
    const body = Buffer.concat([item.bitmap, item.data]);
    parts!.blocks.push(item.index);
    written.push(path);
    const task = limit(() => store.writeFile(`${dir}/${path}`, body));
    pending.add(task);
    task.then(
      () => pending.delete(task),
      (error) => {
        failure ??= error;
      },
    );
    // Backpressure: never more than `concurrency` blocks in flight or queued.
    if (limit.activeCount + limit.pendingCount >= (options.concurrency ?? 4)) await Promise.race(pending);
  }
  await Promise.all(pending);
  if (parts === undefined) throw new VhdError('TRUNCATED', 'empty VHD stream', options.name);
  written.push(...VHD_DIRECTORY_FILES);
  await writeVhdDirectoryParts(store, dir, parts);
  return parts;
}
