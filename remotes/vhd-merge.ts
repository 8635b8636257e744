// Merging a differencing VHD into its parent on any remote. A remote that can rewrite files in place
// does it there (formats/vhd merge, resumable with its state file). Any other remote gets the merged
// disk written as a new file under the child's name (write-then-rename, so readers see the old child
// or the merged one), then the parent deleted: crash-safe without a state file, because once the
// child no longer names the parent, the parent is an orphan the next retention pass deletes.
import { pipeline } from 'node:stream/promises';
import {
  bitmapIsFull,
  createVhdStream,
  DiskType,
  type MergeOptions,
  makeChain,
  VHD_BLOCK_SIZE,
  VhdError,
} from '../formats/vhd';
import { type Remote, RemoteError } from './remote';
import { isAlias, mergeVhdDirectories, resumeDirectoryMerges } from './vhd-directory';
import { findRemoteMergeStates, type RemoteVhd, remoteVhdStore } from './vhd-store';

export async function mergeVhdOnRemote(
  remote: Remote,
  childPath: string,
  options: MergeOptions = {},
): Promise<void> {
  if (isAlias(childPath)) return mergeVhdDirectories(remote, childPath, options.onProgress);
  if (remote.inPlace) return remote.inPlace.mergeVhdIntoParent(childPath, options);
  return rewriteMerge(remote, childPath, options);
}

/**
 * Finishes the merges left unfinished in the chain folder `dir`: merges of VHD directories (ours,
 * resumed from their state file), then, on a remote that rewrites in place, file merges (by a killed
 * run, or by Xen Orchestra: same state files). A rewrite merge leaves no state file; a file merge's
 * state found on a remote that cannot rewrite in place (written by another tool) is refused rather
 * than guessed around.
 */
export async function finishInterruptedMergesOnRemote(
  remote: Remote,
  dir: string,
  options: MergeOptions = {},
): Promise<string[]> {
  await resumeDirectoryMerges(remote, dir);
  if (remote.inPlace) return remote.inPlace.finishInterruptedMerges(dir, options);
  const [state] = await findRemoteMergeStates(remote, dir);
  if (state === undefined) return [];
  throw new RemoteError(
    remote.id,
    dir,
    'UNSUPPORTED',
    `an unfinished merge of ${state.child} into ${state.parent}, left by another tool, needs a remote that rewrites files in place to finish`,
  );
}

async function rewriteMerge(remote: Remote, childPath: string, options: MergeOptions): Promise<void> {
  const store = remoteVhdStore(remote);
  const child = await store.open(childPath);
  let parent: RemoteVhd | undefined;
  try {
    if (child.diskType !== DiskType.differencing)
      throw new VhdError('NOT_DIFFERENCING', 'not a differencing VHD: nothing to merge', childPath);
    const parentPath = (await store.parentCandidates(child))[0];
    if (parentPath === undefined) throw new VhdError('PARENT_MISSING', 'parent not found', childPath);
    parent = await store.open(parentPath);
    if (parent.uuid !== child.header!.parentUuid)
      throw new VhdError(
        'PARENT_UUID_MISMATCH',
        `parent ${parentPath} is not this delta's parent`,
        childPath,
      );
    const pair = makeChain([child, parent]);
    const stillDifferencing = parent.diskType === DiskType.differencing;
    const blocks = pair.blocks();
    let done = 0;
    const source = {
      size: pair.size,
      blocks,
      async readBlock(index: number): Promise<Buffer> {
        options.onProgress?.(done++, blocks.length);
        if (!stillDifferencing) return pair.readBlock(index);
        // The merged file is written with full sector bitmaps: right only if the pair's block is whole.
        const from = child.hasBlock(index) ? child : parent!;
        const raw = (await from.readBlockRaw(index))!;
        if (!bitmapIsFull(raw.bitmap))
          throw new RemoteError(
            remote.id,
            childPath,
            'UNSUPPORTED',
            `block ${index} is partial: merging two deltas of partial blocks needs a remote that rewrites in place`,
          );
        return raw.data.length === VHD_BLOCK_SIZE ? raw.data : Buffer.from(raw.data);
      },
    };
    const header = parent.header!;
    const stream = createVhdStream(source, {
      uuid: child.uuid,
      timestamp: child.footer.timestamp,
      parent: stillDifferencing
        ? { uuid: header.parentUuid, name: header.parentUnicodeName, timestamp: header.parentTimestamp }
        : undefined,
    });
    const write = await remote.createWriteStreamAtomic(childPath);
    try {
      await pipeline(stream, write.stream);
      await write.commit();
    } catch (error) {
      await write.abort();
      throw error;
    }
    await remote.delete(parentPath);
    options.onProgress?.(blocks.length, blocks.length);
  } finally {
    await child.close();
    await parent?.close();
  }
}
