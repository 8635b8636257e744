// One disk of a delta backup as a block device: its VHD chain (tip first, any length) read
// block by block, newest data first, without writing the disk anywhere. Only each file's footer,
// header and allocated BAT entries stay in memory; data is read on demand through ranged reads
// (local files through a FilePool; any other source implements RangedFile).
import path from 'node:path';
import {
  bitmapHas,
  bitmapIsFull,
  blockCount,
  DiskType,
  decodeFooter,
  decodeHeader,
  findParentPath,
  localVhdStore,
  SECTOR_SIZE,
  STORED_BLOCK_SIZE,
  VHD_BLOCK_SIZE,
  type VhdChainStore,
  type VhdDisk,
  VhdError,
} from '../vhd';
import { BITMAP_SIZE, FOOTER_SIZE, HEADER_SIZE } from '../vhd/constants';
import { type BlockDevice, type BlockReader, cachedDevice } from './device';
import { FilePool, type RangedFile } from './file-pool';

const SECTORS_PER_BLOCK = VHD_BLOCK_SIZE / SECTOR_SIZE;

interface ChainElement {
  file: RangedFile;
  uuid: string;
  parentUuid: string | undefined;
  fixed: boolean;
  /** Allocated blocks (ascending) and the byte offset of each stored block (bitmap first). */
  indices: Uint32Array;
  offsets: Float64Array;
}

async function exactly(file: RangedFile, offset: number, length: number, what: string): Promise<Buffer> {
  const buf = await file.read(offset, length);
  if (buf.length < length) throw new VhdError('TRUNCATED', `${what} is cut short`, file.name);
  return buf;
}

async function loadElement(file: RangedFile): Promise<ChainElement & { size: number }> {
  if (file.size < FOOTER_SIZE) throw new VhdError('TRUNCATED', 'too short for a footer', file.name);
  let footer: ReturnType<typeof decodeFooter>;
  try {
    footer = decodeFooter(await exactly(file, file.size - FOOTER_SIZE, FOOTER_SIZE, 'footer'));
  } catch (e) {
    if (e instanceof VhdError && !e.file) throw new VhdError(e.code, e.problem, file.name);
    throw e;
  }
  const size = footer.currentSize;
  if (footer.diskType === DiskType.fixed) {
    return {
      file,
      size,
      uuid: footer.uuid,
      parentUuid: undefined,
      fixed: true,
      indices: new Uint32Array(),
      offsets: new Float64Array(),
    };
  }
  const header = decodeHeader(await exactly(file, footer.dataOffset!, HEADER_SIZE, 'dynamic header'));
  const count = Math.min(header.maxTableEntries, blockCount(size));
  const bat = await exactly(file, header.tableOffset, count * 4, 'BAT');
  const idx: number[] = [];
  const off: number[] = [];
  const limit = file.size - FOOTER_SIZE;
  for (let i = 0; i < count; i++) {
    const sector = bat.readUInt32BE(i * 4);
    if (sector === 0xffffffff) continue;
    const at = sector * SECTOR_SIZE;
    if (at + STORED_BLOCK_SIZE > limit) {
      throw new VhdError('BAT_PAST_END', `BAT entry ${i} points past the end of the data`, file.name);
    }
    idx.push(i);
    off.push(at);
  }
  return {
    file,
    size,
    uuid: footer.uuid,
    parentUuid: footer.diskType === DiskType.differencing ? header.parentUuid : undefined,
    fixed: false,
    indices: Uint32Array.from(idx),
    offsets: Float64Array.from(off),
  };
}

function find(el: ChainElement, block: number): number | undefined {
  let lo = 0;
  let hi = el.indices.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = el.indices[mid];
    if (v === block) return el.offsets[mid];
    if (v < block) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

export interface ChainDeviceOptions {
  /** 2 MiB blocks kept in memory (default 16 = 32 MiB). */
  cacheBlocks?: number;
  /** Called when the device is closed (releases what opened the files). */
  onClose?: () => Promise<void>;
}

/**
 * The chain `files` (tip first, a full or fixed VHD last) as one block device. Each file's parent
 * UUID must match the next file's UUID: a wrong chain is refused instead of read.
 */
export async function chainDevice(files: RangedFile[], opts: ChainDeviceOptions = {}): Promise<BlockDevice> {
  if (files.length === 0) throw new RangeError('empty VHD chain');
  const elements: ChainElement[] = [];
  let size = 0;
  for (const [i, file] of files.entries()) {
    const el = await loadElement(file);
    if (i === 0) size = el.size;
    if (i > 0 && elements[i - 1].parentUuid !== el.uuid) {
      throw new VhdError(
        'PARENT_UUID_MISMATCH',
        `parent ${file.name} has UUID ${el.uuid}, the child expects ${elements[i - 1].parentUuid}`,
        elements[i - 1].file.name,
      );
    }
    const last = i === files.length - 1;
    if (last && el.parentUuid !== undefined) {
      throw new VhdError('PARENT_MISSING', 'the chain ends with a differencing VHD', file.name);
    }
    if (!last && el.parentUuid === undefined) {
      throw new VhdError('NOT_DIFFERENCING', 'a full VHD in the middle of the chain', file.name);
    }
    elements.push(el);
  }
  const count = blockCount(size);
  const readBlock = async (index: number): Promise<Buffer> => {
    let out: Buffer | undefined;
    let need: Uint8Array | undefined; // sectors still to find (1 = needed)
    for (const el of elements) {
      if (el.fixed) {
        const start = index * VHD_BLOCK_SIZE;
        const len = Math.max(0, Math.min(VHD_BLOCK_SIZE, el.file.size - FOOTER_SIZE - start));
        const data = Buffer.alloc(VHD_BLOCK_SIZE);
        if (len > 0) (await el.file.read(start, len)).copy(data);
        if (!out) return data;
        for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
          if (need![s]) data.copy(out, s * SECTOR_SIZE, s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE);
        }
        return out;
      }
      const at = find(el, index);
      if (at === undefined) continue;
      const bitmap = await exactly(el.file, at, BITMAP_SIZE, `block ${index}`);
      const base = el.parentUuid === undefined;
      if (!out && bitmapIsFull(bitmap))
        return exactly(el.file, at + BITMAP_SIZE, VHD_BLOCK_SIZE, `block ${index}`);
      const data = await exactly(el.file, at + BITMAP_SIZE, VHD_BLOCK_SIZE, `block ${index}`);
      out ??= Buffer.alloc(VHD_BLOCK_SIZE);
      need ??= new Uint8Array(SECTORS_PER_BLOCK).fill(1);
      let remaining = 0;
      for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
        if (!need[s]) continue;
        if (bitmapHas(bitmap, s)) {
          data.copy(out, s * SECTOR_SIZE, s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE);
          need[s] = 0;
        } else remaining++;
      }
      if (remaining === 0 || base) break;
    }
    return out ?? Buffer.alloc(VHD_BLOCK_SIZE);
  };
  const reader: BlockReader = {
    size,
    blockSize: VHD_BLOCK_SIZE,
    readBlock: (i) => {
      if (i < 0 || i >= count) throw new RangeError(`block ${i} outside the disk`);
      return readBlock(i);
    },
    close: async () => opts.onClose?.(),
  };
  return cachedDevice(reader, opts.cacheBlocks ?? 16);
}

/**
 * The chain ending at the local VHD `tipPath`, parents found as `openVhdChain` finds them (locators,
 * then name; interrupted merges recognised), with no depth limit and at most `maxOpenFiles`
 * descriptors at any time.
 */
export async function openLocalChainDevice(
  tipPath: string,
  opts: ChainDeviceOptions & { maxOpenFiles?: number } = {},
): Promise<BlockDevice> {
  const paths = await localChainPaths(tipPath);
  const pool = new FilePool(opts.maxOpenFiles ?? 16);
  try {
    const files: RangedFile[] = [];
    for (const p of paths) files.push(await pool.file(p));
    return await chainDevice(files, { ...opts, onClose: () => pool.close() });
  } catch (e) {
    await pool.close();
    throw e;
  }
}

/** Paths of the chain of local files, tip first: one file open at a time. */
export function localChainPaths(tipPath: string): Promise<string[]> {
  return chainPathsIn(localVhdStore, tipPath);
}

/**
 * Paths of the chain ending at `tipPath` in `store` (local files, or a remote's: remotes/vhd-store),
 * tip first, one file open at a time, with no depth limit.
 */
export async function chainPathsIn<D extends VhdDisk>(
  store: VhdChainStore<D>,
  tipPath: string,
): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  let current = tipPath;
  let expectUuid: string | undefined;
  for (;;) {
    const real = await store.identity(current).catch(() => current);
    if (seen.has(real))
      throw new VhdError('CHAIN_LOOP', `${current} is already in the chain (loop)`, out.at(-1));
    seen.add(real);
    const file = await store.open(current);
    try {
      if (expectUuid !== undefined && file.uuid !== expectUuid) {
        // An interrupted merge (formats/README.md): the parent already carries its child's UUID
        // and has a merge state file; it replaces the child.
        const child = out.at(-1)!;
        const childFile = await store.open(child);
        const childUuid = childFile.uuid;
        await childFile.close();
        const merging = await store.exists(store.mergeStatePath(current));
        if (file.uuid !== childUuid || !merging) {
          throw new VhdError(
            'PARENT_UUID_MISMATCH',
            `parent ${path.posix.basename(current)} has UUID ${file.uuid}, the header expects ${expectUuid}`,
            child,
          );
        }
        out.pop();
      }
      out.push(current);
      if (file.diskType !== DiskType.differencing) return out;
      expectUuid = file.header!.parentUuid;
      current = await findParentPath(store, file);
    } finally {
      await file.close();
    }
  }
}
