import { access, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { applyBitmapZeroes, bitmapHas, bitmapIsFull, blockCount } from './bat';
import { DiskType, MAX_CHAIN_DEPTH, SECTOR_SIZE, SECTORS_PER_BLOCK, VHD_BLOCK_SIZE } from './constants';
import { VhdError } from './errors';
import { findMergeState } from './merge-state';
import { mergeStatePath, resolveParentPath } from './parent';
import { openVhdFile, type ReadHandle, readAtVia, type VhdFile } from './reader';
import type { BlockSource } from './source';
import { createVhdStream } from './writer';

/**
 * What a chain needs of one disk of it: a VHD file (local or read through a remote) or a VHD
 * directory (remotes that cannot rewrite files: one object per block).
 */
export type VhdDisk = Pick<
  VhdFile<ReadHandle>,
  | 'path'
  | 'footer'
  | 'header'
  | 'size'
  | 'uuid'
  | 'diskType'
  | 'blocks'
  | 'hasBlock'
  | 'readBlockRaw'
  | 'readBlock'
  | 'readAt'
  | 'close'
>;

/** A chain of VHD files (tip first, base last) read as one virtual disk. */
export interface VhdChain<D extends VhdDisk = VhdDisk> {
  /** Tip first. */
  readonly files: readonly D[];
  readonly size: number;
  /** The tip's footer UUID: the identity of the disk the chain describes. */
  readonly uuid: string;
  /** Blocks held anywhere in the chain (within the tip's size), ascending. */
  blocks(): number[];
  hasBlock(index: number): boolean;
  /** The block as the whole chain describes it (2 MiB). */
  readBlock(index: number): Promise<Buffer>;
  readAt(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Where a chain's files live: the local filesystem (openVhdChain) or a remote (remotes/vhd-store).
 * The walk itself (parents, loops, an interrupted merge) is the same everywhere.
 */
export interface VhdChainStore<D extends VhdDisk> {
  /** A VhdError NOT_FOUND when there is no such disk. */
  open(path: string): Promise<D>;
  /** Existing paths the parent may be at, best first (empty when none exists). */
  parentCandidates(child: D): Promise<string[]>;
  /** Where the parent would be (the name the header gives), whether it exists or not. */
  parentGuess(child: D): Promise<string | undefined>;
  exists(path: string): Promise<boolean>;
  /** One name per file, whatever path reached it (loop detection). */
  identity(path: string): Promise<string>;
  /** Path of the state file of a merge into the parent at `parentPath` (formats/vhd/parent). */
  mergeStatePath(parentPath: string): string;
  /**
   * The parent of an unfinished merge (ours or Xen Orchestra's, by its state file) whose child is
   * `childPath`, as a path of this store; undefined when no merge names that child.
   */
  mergeParentOf(childPath: string): Promise<string | undefined>;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** Chains of local files. */
export const localVhdStore: VhdChainStore<VhdFile> = {
  open: (p) => openVhdFile(p),
  async parentCandidates(child) {
    try {
      return [await resolveParentPath(child)];
    } catch (e) {
      if (e instanceof VhdError && e.code === 'PARENT_MISSING') return [];
      throw e;
    }
  },
  async parentGuess(child) {
    const name = child.header?.parentUnicodeName;
    return name ? path.resolve(path.dirname(child.path), name) : undefined;
  },
  exists,
  identity: (p) => realpath(p),
  mergeStatePath,
  async mergeParentOf(childPath) {
    const dir = path.dirname(childPath);
    const state = await findMergeState(dir, path.basename(childPath));
    return state && path.join(dir, state.parent);
  },
};

/**
 * Opens `tipPath` and its ancestors (found by parent locator / name, checked by parent UUID).
 * A parent that already carries its child's UUID is the result of an interrupted merge of that
 * child (see merge.ts): it replaces the child. A missing parent while that parent's merge state
 * file exists means a merge is renaming it; the open is retried.
 */
export function openVhdChain(tipPath: string): Promise<VhdChain<VhdFile>> {
  return openVhdChainIn(localVhdStore, tipPath);
}

/** openVhdChain on any store. */
export async function openVhdChainIn<D extends VhdDisk>(
  store: VhdChainStore<D>,
  tipPath: string,
): Promise<VhdChain<D>> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await openOnce(store, tipPath);
    } catch (e) {
      if (attempt < 5 && e instanceof RetryableMissing) {
        await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
        continue;
      }
      throw e;
    }
  }
}

/** A parent missing because a merge is renaming it right now. */
class RetryableMissing extends VhdError {}

/** The path of a differencing disk's parent in `store` (see missingParent when none is where its header says). */
export async function findParentPath<D extends VhdDisk>(store: VhdChainStore<D>, child: D): Promise<string> {
  return (await store.parentCandidates(child))[0] ?? (await missingParent(store, child));
}

/**
 * Where the parent of `child` is when none of the paths its header gives exists: a merge into it
 * is renaming it right now (retried), or a merge into its own parent stopped after it was removed
 * and before that parent took its name (XO removes the child first): that parent, bearing its
 * UUID, stands in for it. Otherwise PARENT_MISSING.
 */
async function missingParent<D extends VhdDisk>(store: VhdChainStore<D>, child: D): Promise<string> {
  const guess = await store.parentGuess(child);
  if (guess !== undefined && (await store.exists(store.mergeStatePath(guess)))) {
    throw new RetryableMissing(
      'PARENT_MISSING',
      `parent ${JSON.stringify(guess)} is being renamed`,
      child.path,
    );
  }
  const stand = guess === undefined ? undefined : await store.mergeParentOf(guess).catch(() => undefined);
  if (stand !== undefined && (await store.exists(stand))) return stand;
  const name = child.header?.parentUnicodeName || guess || '(no name)';
  throw new VhdError('PARENT_MISSING', `parent ${JSON.stringify(name)} not found`, child.path);
}

async function openOnce<D extends VhdDisk>(store: VhdChainStore<D>, tipPath: string): Promise<VhdChain<D>> {
  const files: D[] = [];
  const seen = new Set<string>();
  try {
    let current = await store.open(tipPath);
    seen.add(await store.identity(tipPath));
    files.push(current);
    while (current.diskType === DiskType.differencing) {
      if (files.length > MAX_CHAIN_DEPTH) {
        throw new VhdError('CHAIN_TOO_DEEP', `chain deeper than ${MAX_CHAIN_DEPTH} files`, tipPath);
      }
      const parentPath = await findParentPath(store, current);
      const real = await store.identity(parentPath);
      if (seen.has(real)) {
        throw new VhdError(
          'CHAIN_LOOP',
          `parent ${JSON.stringify(parentPath)} is already in the chain (loop)`,
          current.path,
        );
      }
      seen.add(real);
      let parent: D;
      try {
        parent = await store.open(parentPath);
      } catch (e) {
        // Gone between the lookup and the open: a merge renamed it.
        if (e instanceof VhdError && e.code === 'NOT_FOUND') {
          throw new RetryableMissing(
            'PARENT_MISSING',
            `parent ${JSON.stringify(parentPath)} vanished`,
            current.path,
          );
        }
        throw e;
      }
      files.push(parent);
      if (parent.uuid !== current.header!.parentUuid) {
        if (parent.uuid === current.uuid && (await store.exists(store.mergeStatePath(parentPath)))) {
          // Interrupted merge after the parent took the child's identity: the parent is the child.
          files.splice(files.indexOf(current), 1);
          await current.close();
        } else {
          throw new VhdError(
            'PARENT_UUID_MISMATCH',
            `parent ${path.posix.basename(parentPath)} has UUID ${parent.uuid}, the header expects ${current.header!.parentUuid}`,
            current.path,
          );
        }
      }
      current = parent;
    }
  } catch (e) {
    await Promise.all(files.map((f) => f.close().catch(() => {})));
    throw e;
  }
  return makeChain(files);
}

export function makeChain<D extends VhdDisk>(files: D[]): VhdChain<D> {
  const tip = files[0];
  const size = tip.size;
  const count = blockCount(size);
  const set = new Set<number>();
  for (const f of files) for (const b of f.blocks()) if (b < count) set.add(b);
  const blocks = [...set].sort((a, b) => a - b);
  const readBlock = async (index: number): Promise<Buffer> => {
    if (index < 0 || index >= count) throw new RangeError(`block ${index} outside the disk`);
    let out: Buffer | undefined;
    let need: Uint8Array | undefined; // sectors still to resolve (1 = needed); undefined = all
    for (const f of files) {
      if (!f.hasBlock(index)) continue;
      const raw = (await f.readBlockRaw(index))!;
      const last = f.diskType !== DiskType.differencing;
      if (!out && (last || bitmapIsFull(raw.bitmap))) {
        // The block read once: a dynamic base's clear sectors are zeroes (readBlock would read it again).
        if (last) applyBitmapZeroes(raw.bitmap, raw.data);
        return raw.data;
      }
      out ??= Buffer.alloc(VHD_BLOCK_SIZE);
      need ??= new Uint8Array(SECTORS_PER_BLOCK).fill(1);
      let remaining = 0;
      for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
        if (!need[s]) continue;
        if (bitmapHas(raw.bitmap, s) || last) {
          // A dynamic/fixed base answers every remaining sector (clear bit = zeros).
          if (bitmapHas(raw.bitmap, s))
            raw.data.copy(out, s * SECTOR_SIZE, s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE);
          need[s] = 0;
        } else remaining++;
      }
      if (remaining === 0 || last) break;
    }
    return out ?? Buffer.alloc(VHD_BLOCK_SIZE);
  };
  return {
    files,
    size,
    uuid: tip.uuid,
    blocks: () => [...blocks],
    hasBlock: (i) => set.has(i),
    readBlock,
    readAt: (offset, length) => readAtVia(size, readBlock, offset, length),
    close: async () => {
      await Promise.all(files.map((f) => f.close()));
    },
  };
}

/** The chain as a BlockSource (for the writers: VHD, XVA, raw). */
export function chainBlockSource(chain: VhdChain): BlockSource {
  return { size: chain.size, blocks: chain.blocks(), readBlock: (i) => chain.readBlock(i) };
}

/** The whole chain as one dynamic VHD stream (what a restore sends to XAPI), with the tip's UUID. */
export function createChainStream(chain: VhdChain, opts: { timestamp?: Date } = {}): Readable {
  return createVhdStream(chainBlockSource(chain), {
    uuid: chain.uuid,
    timestamp: opts.timestamp ?? chain.files[0].footer.timestamp,
  });
}
