import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { VhdError } from './errors';
import { decodeLocatorData } from './header';
import type { ReadHandle, VhdFile } from './reader';

/**
 * Where a differencing VHD says its parent is, as written: each locator's path, then the parent
 * unicode name ('/'-separated, `file://` dropped; relative to the child's folder unless absolute).
 */
export async function parentNames(child: VhdFile<ReadHandle>): Promise<string[]> {
  const header = child.header;
  if (!header) return [];
  const out: string[] = [];
  for (const l of header.parentLocators) {
    if (l.dataLength <= 0 || l.dataLength > 64 * 1024 || l.dataOffset + l.dataLength > child.fileSize)
      continue;
    const buf = Buffer.alloc(l.dataLength);
    await child.handle.read(buf, 0, l.dataLength, l.dataOffset);
    let p = decodeLocatorData(l.platformCode, buf);
    if (!p) continue;
    if (p.startsWith('file://')) p = p.slice('file://'.length);
    p = p.replace(/\\/g, '/');
    if (p.trim() === '') continue;
    out.push(p);
  }
  if (header.parentUnicodeName) out.push(header.parentUnicodeName.replace(/\\/g, '/'));
  return [...new Set(out)];
}

/** Candidate local paths of a differencing VHD's parent: each locator, then the parent unicode name. */
export async function parentCandidates(child: VhdFile<ReadHandle>): Promise<string[]> {
  const dir = path.dirname(child.path);
  return [...new Set((await parentNames(child)).map((p) => path.resolve(dir, p)))];
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** The path of the parent file, or a PARENT_MISSING VhdError naming the child and what was looked for. */
export async function resolveParentPath(child: VhdFile<ReadHandle>): Promise<string> {
  const candidates = await parentCandidates(child);
  for (const c of candidates) if (await isFile(c)) return c;
  const name = child.header?.parentUnicodeName || candidates[0] || '(no name)';
  throw new VhdError('PARENT_MISSING', `parent ${JSON.stringify(name)} not found`, child.path);
}

/** Path of the merge state file kept next to the parent while a child is merged into it. */
export function mergeStatePath(parentPath: string): string {
  return path.join(path.dirname(parentPath), `.${path.basename(parentPath)}.merge.json`);
}

export async function readJsonIfExists<T>(p: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(p, 'utf8')) as T;
  } catch (e: any) {
    if (e?.code === 'ENOENT') return undefined;
    throw e;
  }
}
