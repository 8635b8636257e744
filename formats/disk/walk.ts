// Walks what a restore asked for: each path, and folders recursively, in a stable order; symlinks
// are entries, never followed; a folder met again inside itself (a damaged filesystem) is an
// error instead of an endless walk. Folders are read page by page.
import { type FileSystemReader, type FsEntry, FsError, pathSegments } from './filesystem';

export interface WalkItem {
  /** Relative archive name: "etc/hosts" (never absolute, never "..") */
  name: string;
  /** Path in the filesystem: "/etc/hosts" */
  path: string;
  entry: FsEntry;
}

const PAGE = 1000;
const MAX_DEPTH = 4096;

export async function* walk(fs: FileSystemReader, paths: string[]): AsyncGenerator<WalkItem> {
  for (const p of paths) {
    const segs = pathSegments(p);
    const entry = await fs.stat(p);
    // The archive keeps the last component only ("/var/log" → "log/…"), as `tar -C /var log` would.
    const name = segs.at(-1) ?? '';
    yield* visit(fs, `/${segs.join('/')}`, name, entry, []);
  }
}

async function* visit(
  fs: FileSystemReader,
  path: string,
  name: string,
  entry: FsEntry,
  ancestors: string[],
): AsyncGenerator<WalkItem> {
  if (name !== '') yield { name, path, entry };
  if (entry.type !== 'directory') return;
  if (entry.id !== undefined && ancestors.includes(entry.id)) {
    throw new FsError('CORRUPT', `${path}: the folder contains itself (looping directory)`);
  }
  if (ancestors.length > MAX_DEPTH)
    throw new FsError('CORRUPT', `${path}: folders nested deeper than ${MAX_DEPTH}`);
  const chain = entry.id === undefined ? ancestors : [...ancestors, entry.id];
  for (let offset = 0; ; offset += PAGE) {
    const page = await fs.list(path, { offset, limit: PAGE });
    for (const child of page.entries) {
      if (child.name === '' || child.name.includes('/') || child.name === '.' || child.name === '..') {
        throw new FsError('CORRUPT', `${path}: invalid name ${JSON.stringify(child.name)}`);
      }
      const childPath = path === '/' ? `/${child.name}` : `${path}/${child.name}`;
      yield* visit(fs, childPath, name === '' ? child.name : `${name}/${child.name}`, child, chain);
    }
    if (offset + PAGE >= page.total) break;
  }
}
