// VHDs on a remote, read through the Remote itself: ranged reads (createReadStream with a byte range)
// stand in for a file handle, so decorators (faults, read-only, encryption) see every read and a
// remote that is not a local folder lists, restores and merges like one. The chain walk is
// formats/vhd's; this module only says where files are and how their bytes are reached.
import path from 'node:path';
import type { RangedFile } from '../formats/disk/file-pool';
import {
  DiskType,
  type FoundMergeState,
  MERGE_STATE_FILE,
  mergeStatePath,
  openVhdChainIn,
  openVhdHandle,
  parentNames,
  parseMergeState,
  type ReadHandle,
  type VhdChain,
  type VhdChainStore,
  type VhdDisk,
  VhdError,
  type VhdFile,
} from '../formats/vhd';
import { basenameOf, dirnameOf, isRemoteError, joinPath, normalizeRemotePath, type Remote } from './remote';
import { isAlias, openAliasedDirectory } from './vhd-directory';

/** A VHD file read through ranged reads, or a VHD directory (its alias names it). */
export type RemoteVhd = VhdDisk;

export const isFile = (disk: VhdDisk): disk is VhdFile<ReadHandle> => 'handle' in disk;

/** Where a disk says its parent is: a file's locators and name, a directory's name. */
async function namesOfParent(disk: VhdDisk): Promise<string[]> {
  if (isFile(disk)) return parentNames(disk);
  const name = disk.header?.parentUnicodeName;
  return name ? [name.replace(/\\/g, '/')] : [];
}

/** Reads of [position, position + length) become one ranged read of the remote each. */
export function rangedReadHandle(remote: Remote, filePath: string, size: number): ReadHandle {
  return {
    async read(buffer, offset, length, position) {
      const end = Math.min(position + length, size);
      if (end <= position) return { bytesRead: 0 };
      const stream = await remote.createReadStream(filePath, { start: position, end: end - 1 });
      let bytesRead = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        const n = Math.min(chunk.length, length - bytesRead);
        chunk.copy(buffer, offset + bytesRead, 0, n);
        bytesRead += n;
      }
      return { bytesRead };
    },
    stat: async () => ({ size }),
    close: async () => {},
  };
}

/** A file of the remote as formats/disk reads one: bytes at an offset, each read one ranged read. */
export async function remoteRangedFile(remote: Remote, filePath: string): Promise<RangedFile> {
  const { size } = await remote.stat(filePath);
  const handle = rangedReadHandle(remote, filePath, size);
  return {
    name: filePath,
    size,
    async read(offset, length) {
      const buffer = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      return bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
    },
  };
}

/** Opens one VHD (file or aliased directory) of a remote, no parents; NOT_FOUND when it is not there. */
export async function openRemoteVhd(remote: Remote, filePath: string): Promise<RemoteVhd> {
  if (isAlias(filePath)) {
    try {
      return await openAliasedDirectory(remote, filePath);
    } catch (error) {
      if (isRemoteError(error, 'ENOENT')) throw new VhdError('NOT_FOUND', 'alias does not exist', filePath);
      throw error;
    }
  }
  let size: number;
  try {
    size = (await remote.stat(filePath)).size;
  } catch (error) {
    if (isRemoteError(error, 'ENOENT')) throw new VhdError('NOT_FOUND', 'file does not exist', filePath);
    throw error;
  }
  // A positional handle where the remote has one (a local folder): no open and no stream per read.
  const handle = remote.openRead ? await remote.openRead(filePath) : rangedReadHandle(remote, filePath, size);
  return openVhdHandle(filePath, handle); // closes it when the file is not a VHD
}

/** A parent name as written in a header, as a path of the remote (relative names from the child's folder). */
function resolveName(childPath: string, name: string): string | undefined {
  // An absolute locator (another host's mount point) can only mean "the file of that name beside me".
  const relative = name.startsWith('/') ? path.posix.basename(name) : name;
  const joined = path.posix.normalize(path.posix.join(dirnameOf(childPath), relative));
  return joined.startsWith('../') || joined === '..' ? undefined : joined;
}

export function remoteVhdStore(remote: Remote): VhdChainStore<RemoteVhd> {
  const exists = (p: string) => remote.exists(p);
  return {
    open: (p) => openRemoteVhd(remote, p),
    async parentCandidates(child) {
      const out: string[] = [];
      for (const name of await namesOfParent(child)) {
        const candidate = resolveName(child.path, name);
        if (candidate !== undefined && !out.includes(candidate) && (await exists(candidate)))
          out.push(candidate);
      }
      return out;
    },
    async parentGuess(child) {
      const name = child.header?.parentUnicodeName;
      return name ? resolveName(child.path, name.replace(/\\/g, '/')) : undefined;
    },
    exists,
    identity: async (p) => normalizeRemotePath(remote.id, p),
    mergeStatePath,
    async mergeParentOf(childPath) {
      const dir = dirnameOf(childPath);
      const state = (await findRemoteMergeStates(remote, dir)).find((s) => s.child === basenameOf(childPath));
      return state && joinPath(dir, state.parent);
    },
  };
}

/** A merge of VHD directories (remotes/vhd-directory: its own state, under the same file name). */
function isDirectoryMergeState(text: Buffer): boolean {
  try {
    return (JSON.parse(text.toString('utf8')) as { kind?: unknown })?.kind === 'vhd-directory';
  } catch {
    return false;
  }
}

/**
 * Every unfinished merge of VHD files (ours or Xen Orchestra's) in the remote folder `dir`, read from its state
 * file (`.<parent>.merge.json`, XO's format: formats/vhd/merge-state).
 */
export async function findRemoteMergeStates(remote: Remote, dir: string): Promise<FoundMergeState[]> {
  const found: FoundMergeState[] = [];
  const names = await remote.list(dir).catch((error) => {
    if (isRemoteError(error, 'ENOENT')) return [] as string[];
    throw error;
  });
  for (const name of names) {
    if (!MERGE_STATE_FILE.test(name)) continue;
    const file = joinPath(dir, name);
    const text = await remote.readFile(file).catch((error) => {
      if (isRemoteError(error, 'ENOENT')) return undefined; // finished meanwhile
      throw error;
    });
    if (text === undefined || isDirectoryMergeState(text)) continue;
    found.push(parseMergeState(name, text.toString('utf8'), file));
  }
  return found;
}

/** The chain of the VHD at `tipPath` on the remote, tip first. */
export function openRemoteChain(remote: Remote, tipPath: string): Promise<VhdChain<RemoteVhd>> {
  return openVhdChainIn(remoteVhdStore(remote), tipPath);
}

/**
 * The parent of the VHD at `vhdPath` as a path of the remote, or null for a full disk. A parent that
 * is not there is still named (the one the header names), so a listing can say it is missing.
 */
export async function readVhdParent(remote: Remote, vhdPath: string): Promise<string | null> {
  const store = remoteVhdStore(remote);
  const file = await store.open(vhdPath);
  try {
    if (file.diskType !== DiskType.differencing) return null;
    const found = (await store.parentCandidates(file))[0];
    if (found !== undefined) return found;
    const named = (await namesOfParent(file))
      .map((n) => resolveName(vhdPath, n))
      .find((n) => n !== undefined);
    return named ?? `${vhdPath}.parent-unknown`;
  } finally {
    await file.close();
  }
}

/** The footer UUID of the VHD at `vhdPath`, undefined when it is missing or unreadable. */
export async function readVhdUuid(remote: Remote, vhdPath: string): Promise<string | undefined> {
  const file = await openRemoteVhd(remote, vhdPath).catch(() => undefined);
  if (file === undefined) return undefined;
  await file.close();
  return file.uuid;
}
