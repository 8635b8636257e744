import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { VhdError } from './errors';
import { mergeStatePath } from './parent';

/**
 * Progress of a merge of `child` into `parent` (both in one folder), as this module sees it.
 * blocks: copying child blocks (those below `currentBlock` are merged and durable); identity: the
 * parent takes the child's footer; rename: the parent replaces the child.
 */
export interface MergeState {
  parent: string;
  child: string;
  parentUuid: string;
  childUuid: string;
  step: 'blocks' | 'identity' | 'rename';
  /** Child blocks with a lower index are merged and durable (XO's `currentBlock`). */
  currentBlock: number;
  /** Bytes of child blocks merged so far (XO's `mergedDataSize`, shown in its logs). */
  mergedDataSize: number;
}

/**
 * The state file on disk, in Xen Orchestra's format (`@xen-orchestra/backup-archive`
 * MergeRemoteDisk; older vhd-lib wrote `{child,parent}.header` checksums and step `cleanupVhds`),
 * so that either tool resumes the other's interrupted merge: `.<parent>.merge.json` next to the
 * parent. XO's steps: `mergeBlocks` (blocks below `currentBlock` are merged; then the parent takes
 * the child's footer) and `cleanup` (the parent is renamed over the child). Our identity step is
 * the end of XO's `mergeBlocks` (`currentBlock` past every block; XO redoes the footer update, which
 * is idempotent); a resume knows it by the parent already bearing the child's UUID.
 */
interface XoMergeState {
  child: { uuid?: string; header?: number };
  parent: { uuid?: string; header?: number };
  /** Paths relative to the state file: [parent, …children]; the last one is the merge target. */
  chain?: string[];
  currentBlock: number | null;
  mergedDataSize: number;
  step?: 'mergeBlocks' | 'cleanup' | 'cleanupVhds';
  diskSize?: number;
}

function toDisk(state: MergeState): XoMergeState {
  return {
    child: { uuid: state.childUuid },
    parent: { uuid: state.parentUuid },
    chain: [state.parent, state.child],
    currentBlock: state.currentBlock,
    mergedDataSize: state.mergedDataSize,
    step: state.step === 'rename' ? 'cleanup' : 'mergeBlocks',
    diskSize: 0,
  };
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes the state durably and atomically (temp file, fsync, rename, fsync folder). */
export async function writeMergeState(dir: string, state: MergeState): Promise<void> {
  const target = mergeStatePath(path.join(dir, state.parent));
  // A name that starts with a dot and does not end in .merge.json: neither tool takes it for a state.
  const tmp = `${target}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(toDisk(state)));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, target);
  await fsyncDir(dir);
}

export async function removeMergeState(dir: string, state: Pick<MergeState, 'parent'>): Promise<void> {
  try {
    await unlink(mergeStatePath(path.join(dir, state.parent)));
  } catch (e: any) {
    if (e?.code !== 'ENOENT') throw e;
  }
  await fsyncDir(dir);
}

/** The name of a merge state file (ours or XO's): `.<parent>.merge.json`, beside the parent. */
export const MERGE_STATE_FILE = /^\.(.+)\.merge\.json$/;

/** A state file read back: what is known without opening the VHDs (the caller completes the rest). */
export interface FoundMergeState {
  parent: string;
  child: string;
  parentUuid?: string;
  childUuid?: string;
  /** `blocks` may be past them, in `identity`: the caller tells by the parent's UUID. */
  step: 'blocks' | 'rename';
  currentBlock: number;
  mergedDataSize: number;
}

/**
 * A state file's content (ours or XO's) read back, wherever it was read from (a local folder or a
 * remote's ranged reads): `name` is the file's name, `file` its path for messages. Pure.
 */
export function parseMergeState(name: string, text: string, file: string): FoundMergeState {
  const parent = MERGE_STATE_FILE.exec(name)?.[1];
  const bad = (why: string) => new VhdError('MERGE_STATE', `merge state file ${name}: ${why}`, file);
  if (parent === undefined) throw bad('not a merge state file name');
  let s: XoMergeState;
  try {
    s = JSON.parse(text) as XoMergeState;
  } catch {
    throw bad('not JSON');
  }
  if (typeof s !== 'object' || s === null) throw bad('not a JSON object');
  let child: string | undefined;
  if (Array.isArray(s.chain) && s.chain.length >= 2) {
    // Relative to the state file (XO: relativeFromFile); the target must be a name in the same folder.
    const target = path.posix.normalize(String(s.chain[s.chain.length - 1]).replace(/\\/g, '/'));
    const folder = path.posix.dirname(file.replace(/\\/g, '/'));
    const inFolder = path.posix.isAbsolute(target)
      ? path.posix.dirname(target) === folder
      : !target.includes('/') && target !== '..';
    if (!inFolder) throw bad('its chain leaves the folder');
    if (s.chain.length > 2) throw bad('merges of more than one child at once are not supported');
    child = path.posix.basename(target);
  }
  if (!child) throw bad('no chain (an XO state too old to name its child)');
  const step =
    s.step === 'cleanup' || s.step === 'cleanupVhds'
      ? 'rename'
      : s.step === undefined || s.step === 'mergeBlocks'
        ? 'blocks'
        : undefined;
  if (!step) throw bad(`unknown step ${JSON.stringify(s.step)}`);
  return {
    parent,
    child,
    parentUuid: s.parent?.uuid,
    childUuid: s.child?.uuid,
    step,
    // XO once wrote null (a NaN) or -1: both mean "from the start", as XO reads them.
    currentBlock: typeof s.currentBlock === 'number' && s.currentBlock > 0 ? s.currentBlock : 0,
    mergedDataSize: typeof s.mergedDataSize === 'number' ? s.mergedDataSize : 0,
  };
}

/** Every unfinished merge in the local folder `dir` (ours or Xen Orchestra's), read from its state file. */
export async function findMergeStates(dir: string): Promise<FoundMergeState[]> {
  const found: FoundMergeState[] = [];
  for (const name of await readdir(dir)) {
    if (!MERGE_STATE_FILE.test(name)) continue;
    const file = path.join(dir, name);
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined; // finished meanwhile
      throw e;
    });
    if (text !== undefined) found.push(parseMergeState(name, text, file));
  }
  return found;
}

/** The state of an unfinished merge whose child is `childName` in `dir`, if any. */
export async function findMergeState(dir: string, childName: string): Promise<FoundMergeState | undefined> {
  return (await findMergeStates(dir)).find((s) => s.child === childName);
}
