import { access, rename } from 'node:fs/promises';
import path from 'node:path';
import { batSize, bitmapHas, bitmapIsFull, blockCount, STORED_BLOCK_SIZE } from './bat';
import { BITMAP_SIZE, DiskType, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, SECTORS_PER_BLOCK } from './constants';
import { VhdError } from './errors';
import { encodeFooter, type VhdFooter } from './footer';
import { encodeHeader } from './header';
import {
  type FoundMergeState,
  findMergeState,
  findMergeStates,
  fsyncDir,
  type MergeState,
  removeMergeState,
  writeMergeState,
} from './merge-state';
import { resolveParentPath } from './parent';
import { openVhdFile, type VhdFile } from './reader';

export interface MergeOptions {
  onProgress?(done: number, total: number): void;
  /** Called when a step starts (for logs / heartbeats). */
  onStep?(step: MergeState['step'] | 'done'): void;
  /** Child blocks made durable per fsync + state write (default 64 = 128 MiB: what a resume may redo). */
  batchBlocks?: number;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Merges the differencing VHD `childPath` into its parent, in place, as XO's retention does: the
 * parent takes the child's blocks and identity (UUID, size, timestamp), then is renamed over the
 * child (so a grandchild's parent locator stays valid), and the child is gone.
 *
 * Crash-safe and resumable: progress is kept in `.<parent>.merge.json`, in Xen Orchestra's format
 * (merge-state.ts), so calling again after a crash at any point finishes the merge, ours or one XO
 * left unfinished, and XO finishes ours. Ordering, so that the chain reads the right disk at every instant:
 * 1. blocks, in batches: data first (new blocks are appended where the trailing footer was, after a
 *    fresh footer has been written past the batch, so the file always ends with a valid footer; a
 *    block the parent holds is overwritten with parent ∪ child, which readers going through the child
 *    cannot tell apart), fsync, then the BAT entries, fsync, then the state file.
 * 2. identity: the parent's footers take the child's UUID / size / timestamp; readers treat a parent
 *    bearing its child's UUID (while the state file exists) as that child.
 * 3. rename: parent → child's name (atomic replace), fsync the folder, remove the state file.
 */
export async function mergeVhdIntoParent(childPath: string, opts: MergeOptions = {}): Promise<void> {
  const dir = path.dirname(path.resolve(childPath));
  const childName = path.basename(childPath);
  const found = await findMergeState(dir, childName);
  let state = found ? await resume(dir, found) : await start(path.resolve(childPath));
  if (state.step === 'blocks') {
    opts.onStep?.('blocks');
    state = await copyBlocks(dir, state, opts);
    state = { ...state, step: 'identity' };
    await writeMergeState(dir, state);
  }
  if (state.step === 'identity') {
    opts.onStep?.('identity');
    await takeIdentity(dir, state);
    state = { ...state, step: 'rename' };
    await writeMergeState(dir, state);
  }
  opts.onStep?.('rename');
  const parentPath = path.join(dir, state.parent);
  if (await exists(parentPath)) {
    await rename(parentPath, path.join(dir, state.child));
    await fsyncDir(dir);
  }
  await removeMergeState(dir, state);
  opts.onStep?.('done');
}

/**
 * Finishes every merge left unfinished in `dir` (by us or by Xen Orchestra: same state files);
 * returns the merged children's names.
 */
export async function finishInterruptedMerges(dir: string, opts: MergeOptions = {}): Promise<string[]> {
  const done: string[] = [];
  for (const state of await findMergeStates(dir)) {
    await mergeVhdIntoParent(path.join(dir, state.child), opts);
    done.push(state.child);
  }
  return done;
}

/** Completes a state file read back (ours or XO's) from the files themselves. */
async function resume(dir: string, found: FoundMergeState): Promise<MergeState> {
  if (found.step === 'rename') {
    return { ...found, parentUuid: found.parentUuid ?? '', childUuid: found.childUuid ?? '', step: 'rename' };
  }
  const child = await openVhdFile(path.join(dir, found.child));
  let parent: VhdFile | undefined;
  try {
    parent = await openVhdFile(path.join(dir, found.parent));
    const childUuid = found.childUuid ?? child.uuid;
    if (childUuid !== child.uuid) {
      throw new VhdError('MERGE_STATE', 'the child no longer matches the merge state file', child.path);
    }
    // The parent bearing the child's UUID has taken its identity: every block was merged before.
    const identity = parent.uuid === child.uuid;
    if (!identity && found.parentUuid !== undefined && found.parentUuid !== parent.uuid) {
      throw new VhdError('MERGE_STATE', 'the parent no longer matches the merge state file', parent.path);
    }
    return {
      parent: found.parent,
      child: found.child,
      parentUuid: identity ? (found.parentUuid ?? child.header!.parentUuid) : parent.uuid,
      childUuid,
      step: identity ? 'identity' : 'blocks',
      currentBlock: found.currentBlock,
      mergedDataSize: found.mergedDataSize,
    };
  } finally {
    await child.close();
    await parent?.close();
  }
}

async function start(childPath: string): Promise<MergeState> {
  const child = await openVhdFile(childPath);
  let parent: VhdFile | undefined;
  try {
    if (child.diskType !== DiskType.differencing) {
      throw new VhdError(
        'NOT_DIFFERENCING',
        'not a differencing VHD: nothing to merge into a parent',
        childPath,
      );
    }
    const parentPath = await resolveParentPath(child);
    if (path.dirname(parentPath) !== path.dirname(childPath)) {
      throw new VhdError('UNSUPPORTED', `parent ${parentPath} is not in the child's folder`, childPath);
    }
    parent = await openVhdFile(parentPath, { writable: true });
    if (parent.uuid !== child.header!.parentUuid) {
      throw new VhdError(
        'PARENT_UUID_MISMATCH',
        `parent ${path.basename(parentPath)} has UUID ${parent.uuid}, the header expects ${child.header!.parentUuid}`,
        childPath,
      );
    }
    if (parent.diskType === DiskType.fixed) {
      throw new VhdError('UNSUPPORTED', 'merging into a fixed VHD is not supported', parentPath);
    }
    await growBat(parent, blockCount(child.size));
    const state: MergeState = {
      parent: path.basename(parentPath),
      child: path.basename(childPath),
      parentUuid: parent.uuid,
      childUuid: child.uuid,
      step: 'blocks',
      currentBlock: child.blocks()[0] ?? blockCount(child.size),
      mergedDataSize: 0,
    };
    await writeMergeState(path.dirname(childPath), state);
    return state;
  } finally {
    await child.close();
    await parent?.close();
  }
}

/**
 * Makes the parent's BAT hold `needed` entries (the child's disk is larger). Blocks stored where the
 * larger BAT goes are first moved to the end of the file, one at a time: a fresh footer past the
 * new place, the copy, fsync, then the 4-byte BAT entry switch, fsync, so a reader finds one of two
 * identical copies. Then the new entries are written unused (0xFF), fsync, then the header. Safe to
 * re-run after a crash at any point (nothing moved twice, the header is written last).
 */
async function growBat(parent: VhdFile, needed: number): Promise<void> {
  const header = parent.header!;
  if (needed <= header.maxTableEntries) return;
  const fh = parent.handle;
  const bat = parent.bat!;
  const batStart = header.tableOffset;
  const batEnd = batStart + batSize(needed);
  const overlaps = (o: number, len: number) => o < batEnd && o + len > batStart;
  if (
    overlaps(parent.footer.dataOffset!, HEADER_SIZE) ||
    header.parentLocators.some((l) => overlaps(l.dataOffset, l.dataSpace))
  ) {
    throw new VhdError(
      'UNSUPPORTED',
      'cannot grow the BAT: the header or a parent locator follows it',
      parent.path,
    );
  }
  const inTheWay = bat
    .present()
    .filter((i) => overlaps(bat.offset(i)!, STORED_BLOCK_SIZE))
    .sort((x, y) => bat.offset(x)! - bat.offset(y)!);
  let end = parent.fileSize;
  const footer = encodeFooter(parent.footer);
  const block = Buffer.allocUnsafe(STORED_BLOCK_SIZE);
  for (const i of inTheWay) {
    const { bytesRead } = await fh.read(block, 0, STORED_BLOCK_SIZE, bat.offset(i)!);
    if (bytesRead !== STORED_BLOCK_SIZE)
      throw new VhdError('TRUNCATED', `block ${i} is cut short`, parent.path);
    const x = end - FOOTER_SIZE;
    await fh.write(footer, 0, FOOTER_SIZE, x + STORED_BLOCK_SIZE);
    await fh.write(block, 0, STORED_BLOCK_SIZE, x);
    end = x + STORED_BLOCK_SIZE + FOOTER_SIZE;
    await fh.sync();
    const e = Buffer.alloc(4);
    e.writeUInt32BE(x / SECTOR_SIZE, 0);
    await fh.write(e, 0, 4, batStart + i * 4);
    bat.entries[i] = x / SECTOR_SIZE;
    await fh.sync();
  }
  const from = batStart + header.maxTableEntries * 4;
  const extra = Buffer.alloc(batEnd - from, 0xff);
  await fh.write(extra, 0, extra.length, from);
  await fh.sync();
  const h = encodeHeader({ ...header, maxTableEntries: needed });
  await fh.write(h, 0, h.length, parent.footer.dataOffset!);
  await fh.sync();
}

/** Copies the child blocks from `currentBlock` on; returns the state with every block merged. */
async function copyBlocks(dir: string, state: MergeState, opts: MergeOptions): Promise<MergeState> {
  const child = await openVhdFile(path.join(dir, state.child));
  let parent: VhdFile | undefined;
  try {
    parent = await openVhdFile(path.join(dir, state.parent), { writable: true });
    if (child.uuid !== state.childUuid || parent.uuid !== state.parentUuid) {
      throw new VhdError('MERGE_STATE', 'the files no longer match the merge state file', parent.path);
    }
    const fh = parent.handle;
    const all = child.blocks();
    const blocks = all.filter((i) => i >= state.currentBlock);
    const batch = Math.max(1, opts.batchBlocks ?? 64);
    const entries = parent.header!.maxTableEntries;
    let end = parent.fileSize;
    const footer = encodeFooter(parent.footer);
    let done = 0;
    let mergedDataSize = state.mergedDataSize;
    const total = all.length;
    const before = total - blocks.length;
    opts.onProgress?.(before, total);
    while (done < blocks.length) {
      const slice = blocks.slice(done, done + batch);
      const newEntries: { index: number; sector: number }[] = [];
      // Blocks the parent lacks are appended where its trailing footer is. So that the file ends
      // with a valid footer at every instant, the footer goes first to the end of this batch.
      const appended = slice.filter((i) => !parent!.bat!.has(i)).length;
      let x = end - FOOTER_SIZE;
      if (appended > 0) {
        end = x + appended * STORED_BLOCK_SIZE + FOOTER_SIZE;
        await fh.write(footer, 0, FOOTER_SIZE, end - FOOTER_SIZE);
      }
      const flusher = backgroundFlush(fh);
      for (const index of slice) {
        if (index >= entries) {
          throw new VhdError('BAD_FIELD', `block ${index} beyond the parent's BAT`, parent.path);
        }
        const c = (await child.readBlockRaw(index))!;
        const at = parent.bat!.offset(index);
        if (at !== undefined) {
          // A full child block replaces the parent's outright; a partial one is merged sector by sector.
          const merged = bitmapIsFull(c.bitmap)
            ? stored(c)
            : mergeBlock((await parent.readBlockRaw(index))!, c);
          await fh.write(merged, 0, merged.length, at);
        } else {
          const block = stored(c);
          await fh.write(block, 0, block.length, x);
          newEntries.push({ index, sector: x / SECTOR_SIZE });
          x += STORED_BLOCK_SIZE;
        }
        flusher.wrote(STORED_BLOCK_SIZE);
      }
      await flusher.done();
      await fh.sync();
      if (newEntries.length > 0) {
        // The batch's BAT entries in one write: the span of the table they fall in, from the table
        // in memory (equal to the file's outside the new entries).
        const bat = parent.bat!;
        for (const { index, sector } of newEntries) bat.entries[index] = sector;
        const first = newEntries[0].index;
        const last = newEntries[newEntries.length - 1].index;
        const span = Buffer.allocUnsafe((last - first + 1) * 4);
        for (let i = first; i <= last; i++) span.writeUInt32BE(bat.entries[i], (i - first) * 4);
        await fh.write(span, 0, span.length, parent.header!.tableOffset + first * 4);
        await fh.sync();
      }
      done += slice.length;
      mergedDataSize += slice.length * STORED_BLOCK_SIZE;
      // XO's currentBlock: the first child block not merged yet (past the last one when all are).
      const currentBlock = blocks[done] ?? blockCount(child.size);
      await writeMergeState(dir, { ...state, currentBlock, mergedDataSize });
      opts.onProgress?.(before + done, total);
    }
    return { ...state, currentBlock: blockCount(child.size), mergedDataSize };
  } finally {
    await child.close();
    await parent?.close();
  }
}

/** Bytes written after which the data is flushed in the background while the batch goes on. */
const FLUSH_EVERY = 32 * 1024 * 1024;

/**
 * Flushes what a batch wrote while it goes on (one fdatasync at a time), so the fsync that must come
 * before the batch's BAT entries finds little left and the disk never waits for the copy or the
 * copy for the disk. Only ever makes data durable earlier: the crash-safe order is unchanged.
 */
function backgroundFlush(fh: VhdFile['handle']): { wrote(bytes: number): void; done(): Promise<void> } {
  let pending = 0;
  let flushing: Promise<void> | undefined;
  let failure: unknown;
  return {
    wrote(bytes) {
      pending += bytes;
      if (pending < FLUSH_EVERY || flushing) return;
      pending = 0;
      flushing = fh
        .datasync()
        .catch((error) => {
          failure ??= error;
        })
        .finally(() => {
          flushing = undefined;
        });
    },
    async done() {
      await flushing;
      // A write-back error is reported once: the batch's own fsync might not see it again.
      if (failure !== undefined) throw failure;
    },
  };
}

/** Bitmap + data as one buffer (no copy when they are already contiguous, as readBlockRaw returns them). */
function stored(c: { bitmap: Buffer; data: Buffer }): Buffer {
  if (c.bitmap.buffer === c.data.buffer && c.data.byteOffset === c.bitmap.byteOffset + BITMAP_SIZE) {
    return Buffer.from(c.bitmap.buffer, c.bitmap.byteOffset, BITMAP_SIZE + c.data.length);
  }
  return Buffer.concat([c.bitmap, c.data]);
}

/** Parent block ∪ child block: child sectors where the child's bitmap is set, else the parent's. */
function mergeBlock(p: { bitmap: Buffer; data: Buffer }, c: { bitmap: Buffer; data: Buffer }): Buffer {
  const out = Buffer.alloc(STORED_BLOCK_SIZE);
  for (let i = 0; i < BITMAP_SIZE; i++) out[i] = p.bitmap[i] | c.bitmap[i];
  p.data.copy(out, BITMAP_SIZE);
  for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
    if (bitmapHas(c.bitmap, s))
      c.data.copy(out, BITMAP_SIZE + s * SECTOR_SIZE, s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE);
  }
  return out;
}

async function takeIdentity(dir: string, state: MergeState): Promise<void> {
  const child = await openVhdFile(path.join(dir, state.child));
  let parent: VhdFile | undefined;
  try {
    parent = await openVhdFile(path.join(dir, state.parent), { writable: true });
    if (child.uuid !== state.childUuid) {
      throw new VhdError('MERGE_STATE', 'the child no longer matches the merge state file', child.path);
    }
    const f: VhdFooter = {
      ...parent.footer,
      uuid: child.uuid,
      currentSize: child.footer.currentSize,
      originalSize: child.footer.originalSize,
      geometry: child.footer.geometry,
      timestamp: child.footer.timestamp,
      hidden: false,
    };
    const bytes = encodeFooter(f);
    await parent.handle.write(bytes, 0, FOOTER_SIZE, parent.fileSize - FOOTER_SIZE);
    await parent.handle.write(bytes, 0, FOOTER_SIZE, 0);
    await parent.handle.sync();
  } finally {
    await child.close();
    await parent?.close();
  }
}
