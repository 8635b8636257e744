// Xen Orchestra's VHD-directory layout on a remote (xo-backups.md §4.4; vhd-lib aliases.js and
// VhdDirectory.js read for facts), used by every remote that cannot rewrite a file in place (S3,
// encrypted remotes): a delta is `<ts>.alias.vhd`, a small file holding the relative path of its data
// folder `data/<ts>.vhd/` (header, footer, bat, one object per block). The alias is written last:
// without it the data is not a disk. A merge copies block objects inside the storage (S3: server-side
// CopyObject, no block data through this process) and rewrites the small files only.
import { PassThrough } from 'node:stream';
import {
  blockObjectPath,
  DiskType,
  mergeStatePath,
  openVhdDirectory,
  readVhdDirectoryParts,
  type VhdDisk,
  type VhdObjectStore,
  writeVhdDirectory,
  writeVhdDirectoryParts,
} from '../formats/vhd';
import {
  type AtomicWrite,
  basenameOf,
  dirnameOf,
  isRemoteError,
  joinPath,
  type Remote,
  RemoteError,
} from './remote';

export const ALIAS_SUFFIX = '.alias.vhd';
export const isAlias = (path: string): boolean => path.endsWith(ALIAS_SUFFIX);

/** A remote whose files cannot be rewritten in place keeps deltas as VHD directories. */
export const usesVhdDirectories = (remote: Remote): boolean => remote.inPlace === undefined;

/** `…/<ts>.vhd` (the canonical name) → `…/<ts>.alias.vhd` on remotes that use directories. */
export function vhdPathOn(remote: Remote, canonical: string): string {
  return usesVhdDirectories(remote) && !isAlias(canonical)
    ? canonical.replace(/\.vhd$/, ALIAS_SUFFIX)
    : canonical;
}

/** The data folder of an alias, relative to the root; refuses chained aliases and escapes. */
export async function resolveAlias(remote: Remote, alias: string): Promise<string> {
  const target = (await remote.readFile(alias)).toString().trim();
  const dir = dirnameOf(alias);
  const segments = target.split('/');
  if (
    target === '' ||
    target.length > 1024 ||
    target.startsWith('/') ||
    segments.includes('..') ||
    isAlias(target)
  )
    throw new RemoteError(
      remote.id,
      alias,
      'EIO',
      `alias ${JSON.stringify(target)} is not a data folder of this chain`,
    );
  return joinPath(dir, target);
}

export function objectStoreOf(remote: Remote): VhdObjectStore {
  return {
    readFile: (path) => remote.readFile(path),
    writeFile: (path, data) => remote.writeFileAtomic(path, data),
  };
}

export async function openAliasedDirectory(remote: Remote, alias: string): Promise<VhdDisk> {
  return openVhdDirectory(objectStoreOf(remote), await resolveAlias(remote, alias), alias);
}

/** Every file below `dir` (relative to the root), depth first. */
async function listTree(remote: Remote, dir: string): Promise<string[]> {
  const out: string[] = [];
  let names: string[];
  try {
    names = await remote.list(dir);
  } catch (error) {
    if (isRemoteError(error, 'ENOENT') || isRemoteError(error, 'ENOTDIR')) return out;
    throw error;
  }
  for (const name of names) {
    const path = `${dir}/${name}`;
    if ((await remote.stat(path)).isDirectory) out.push(...(await listTree(remote, path)));
    else out.push(path);
  }
  return out;
}

async function deleteTree(remote: Remote, dir: string): Promise<void> {
  for (const file of await listTree(remote, dir)) await remote.delete(file);
}

/** Aliases of a chain folder pointing at `dataDir`, except `but`. */
async function otherAliasesOf(remote: Remote, dataDir: string, but: string): Promise<string[]> {
  const dir = dirnameOf(but);
  const out: string[] = [];
  for (const name of await remote.list(dir).catch(() => [] as string[])) {
    const alias = `${dir}/${name}`;
    if (!isAlias(name) || alias === but) continue;
    if ((await resolveAlias(remote, alias).catch(() => undefined)) === dataDir) out.push(alias);
  }
  return out;
}

/**
 * Deletes a delta: the alias first (the disk disappears at once), then its data folder, unless
 * another alias still points at it (an interrupted merge's child already took the parent's data).
 */
export async function deleteVhd(remote: Remote, path: string): Promise<void> {
  if (!isAlias(path)) return remote.delete(path);
  const data = await resolveAlias(remote, path).catch((error) => {
    if (isRemoteError(error, 'ENOENT')) return undefined;
    throw error;
  });
  await remote.delete(path);
  if (data !== undefined && (await otherAliasesOf(remote, data, path)).length === 0)
    await deleteTree(remote, data);
}

/**
 * Where a backup's VHD byte stream goes: one file written atomically, or (VHD directories) the
 * stream parsed into objects and the alias written on commit. A failed or aborted write leaves no
 * alias and removes what it wrote.
 */
export async function openVhdWrite(remote: Remote, canonical: string): Promise<AtomicWrite> {
  if (!usesVhdDirectories(remote)) return remote.createWriteStreamAtomic(canonical);
  const alias = vhdPathOn(remote, canonical);
  const dataDir = `${dirnameOf(alias)}/data/${basenameOf(canonical)}`;
  const stream = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  const written: string[] = [];
  const writing = writeVhdDirectory(objectStoreOf(remote), dataDir, stream, {
    written,
    name: alias,
    parentName: (name) => (isAlias(name) ? name : name.replace(/\.vhd$/, ALIAS_SUFFIX)),
  });
  writing.catch((error) => stream.destroy(error));
  let state: 'open' | 'committed' | 'aborted' = 'open';
  return {
    stream,
    async commit() {
      if (state === 'committed') return;
      if (state === 'aborted') throw new RemoteError(remote.id, alias, 'ABORTED', 'commit after abort');
      if (!stream.writableEnded) stream.end();
      await writing;
      await remote.writeFileAtomic(alias, `data/${basenameOf(canonical)}`);
      state = 'committed';
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      stream.destroy();
      await writing.catch(() => {});
      for (const path of written) await remote.delete(`${dataDir}/${path}`).catch(() => {});
    },
  };
}

interface DirectoryMergeState {
  version: 1;
  kind: 'vhd-directory';
  /** names in the chain folder */
  parent: string;
  child: string;
  parentData: string;
  childData: string;
  parentUuid: string;
  childUuid: string;
  step: 'blocks' | 'identity' | 'alias' | 'cleanup';
}

/**
 * Merges the delta at `childAlias` into its parent, both VHD directories of one folder: the parent's
 * data takes the child's block objects (copied by the storage) and identity, the child's alias is
 * pointed at it, the parent's alias and the child's data go. The state file (XO's name for it:
 * `.<parent>.merge.json`) lets a crash at any point resume; meanwhile every chain stays readable
 * (formats/vhd: a parent bearing its child's UUID while a merge state exists stands for the child).
 */
export async function mergeVhdDirectories(
  remote: Remote,
  childAlias: string,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const dir = dirnameOf(childAlias);
  const store = objectStoreOf(remote);
  let state = await findState(remote, dir, basenameOf(childAlias));
  if (state === undefined) {
    const child = await openAliasedDirectory(remote, childAlias);
    if (child.diskType !== DiskType.differencing)
      throw new RemoteError(remote.id, childAlias, 'EIO', 'not a differencing VHD: nothing to merge');
    const parentName = child.header!.parentUnicodeName;
    const parentAlias = `${dir}/${parentName}`;
    if (!isAlias(parentName) || dirnameOf(parentAlias) !== dir)
      throw new RemoteError(
        remote.id,
        childAlias,
        'UNSUPPORTED',
        `parent ${parentName} is not a VHD directory of this folder`,
      );
    const parent = await openAliasedDirectory(remote, parentAlias);
    if (parent.uuid !== child.header!.parentUuid)
      throw new RemoteError(
        remote.id,
        childAlias,
        'EIO',
        `parent ${parentName} is not this delta's parent (UUID)`,
      );
    state = {
      version: 1,
      kind: 'vhd-directory',
      parent: parentName,
      child: basenameOf(childAlias),
      parentData: await resolveAlias(remote, parentAlias),
      childData: await resolveAlias(remote, childAlias),
      parentUuid: parent.uuid,
      childUuid: child.uuid,
      step: 'blocks',
    };
    await saveState(remote, dir, state);
  }
  const statePath = mergeStatePath(`${dir}/${state.parent}`);
  if (state.step === 'blocks') {
    const child = await readVhdDirectoryParts(store, state.childData);
    const parent = await readVhdDirectoryParts(store, state.parentData);
    let done = 0;
    for (const index of child.blocks) {
      // XAPI writes whole blocks (every sector bit set): the child's object replaces the parent's.
      await remote.copy(
        `${state.childData}/${blockObjectPath(index)}`,
        `${state.parentData}/${blockObjectPath(index)}`,
      );
      onProgress?.(++done, child.blocks.length);
    }
    await writeVhdDirectoryParts(store, state.parentData, {
      footer: parent.footer,
      header: {
        ...parent.header,
        maxTableEntries: Math.max(parent.header.maxTableEntries, child.header.maxTableEntries),
      },
      blocks: [...new Set([...parent.blocks, ...child.blocks])].sort((a, b) => a - b),
    });
    state = { ...state, step: 'identity' };
    await saveState(remote, dir, state);
  }
  if (state.step === 'identity') {
    const child = await readVhdDirectoryParts(store, state.childData);
    const parent = await readVhdDirectoryParts(store, state.parentData);
    await writeVhdDirectoryParts(store, state.parentData, {
      ...parent,
      footer: {
        ...parent.footer,
        uuid: child.footer.uuid,
        currentSize: child.footer.currentSize,
        originalSize: child.footer.originalSize,
        geometry: child.footer.geometry,
        timestamp: child.footer.timestamp,
      },
    });
    state = { ...state, step: 'alias' };
    await saveState(remote, dir, state);
  }
  if (state.step === 'alias') {
    const relative = state.parentData.slice(dir.length + 1);
    await remote.writeFileAtomic(`${dir}/${state.child}`, relative);
    await remote.delete(`${dir}/${state.parent}`);
    state = { ...state, step: 'cleanup' };
    await saveState(remote, dir, state);
  }
  await deleteTree(remote, state.childData);
  await remote.delete(statePath);
}

async function saveState(remote: Remote, dir: string, state: DirectoryMergeState): Promise<void> {
  await remote.writeFileAtomic(mergeStatePath(`${dir}/${state.parent}`), JSON.stringify(state));
}

/** The unfinished directory merge of `child` in `dir`, if any. */
async function findState(
  remote: Remote,
  dir: string,
  child: string,
): Promise<DirectoryMergeState | undefined> {
  for (const state of await directoryMergeStates(remote, dir)) if (state.child === child) return state;
  return undefined;
}

export async function directoryMergeStates(remote: Remote, dir: string): Promise<DirectoryMergeState[]> {
  const out: DirectoryMergeState[] = [];
  for (const name of await remote.list(dir).catch(() => [] as string[])) {
    if (!name.startsWith('.') || !name.endsWith('.merge.json')) continue;
    const state = JSON.parse((await remote.readFile(`${dir}/${name}`)).toString()) as DirectoryMergeState;
    if (state.kind === 'vhd-directory') out.push(state);
  }
  return out;
}

/** Finishes every interrupted directory merge of a chain folder (before retention plans anything). */
export async function resumeDirectoryMerges(remote: Remote, dir: string): Promise<void> {
  for (const state of await directoryMergeStates(remote, dir))
    await mergeVhdDirectories(remote, `${dir}/${state.child}`);
}
