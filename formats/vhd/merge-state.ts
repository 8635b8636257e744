import { open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { VhdError } from './errors';
import { mergeStatePath, readJsonIfExists } from './parent';

/** Progress of a merge of `child` into `parent`, kept next to the parent (XO names it the same way). */
export interface MergeState {
  version: 1;
  /** Base names, both in the same folder. */
  parent: string;
  child: string;
  parentUuid: string;
  childUuid: string;
  /** blocks: copying child blocks; identity: parent takes the child's footer; rename: parent replaces child. */
  step: 'blocks' | 'identity' | 'rename';
  /** Child blocks (in ascending order) already merged and durable. */
  done: number;
  total: number;
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
  const tmp = `${target}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(state));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, target);
  await fsyncDir(dir);
}

export async function removeMergeState(dir: string, state: MergeState): Promise<void> {
  try {
    await unlink(mergeStatePath(path.join(dir, state.parent)));
  } catch (e: any) {
    if (e?.code !== 'ENOENT') throw e;
  }
  await fsyncDir(dir);
}

/** The state of an unfinished merge whose child is `childName` in `dir`, if any. */
export async function findMergeState(dir: string, childName: string): Promise<MergeState | undefined> {
  for (const name of await readdir(dir)) {
    if (!name.startsWith('.') || !name.endsWith('.merge.json')) continue;
    const state = await readJsonIfExists<MergeState>(path.join(dir, name));
    if (!state) continue;
    if (state.version !== 1 || typeof state.parent !== 'string' || typeof state.child !== 'string') {
      throw new VhdError('MERGE_STATE', `unreadable merge state file ${name}`, path.join(dir, name));
    }
    if (state.child === childName) return state;
  }
  return undefined;
}
