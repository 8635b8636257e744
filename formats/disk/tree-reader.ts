// The part of a FileSystemReader that is the same for every filesystem whose folders list children
// to look up one by one (NTFS's MFT records, XFS's inodes): walking a path from the root, the checks
// that a path is a folder to list or a file to read, paging, the paths errors name, and a file's
// bytes as a stream read a few MiB at a time. Each filesystem gives only its own look-ups.
import { Readable } from 'node:stream';
import { type FileSystemReader, type FsEntry, FsError, pageOf, pathSegments } from './filesystem';

export interface TreeLookups<E extends FsEntry, C extends { name: string }> {
  /** the root folder's entry */
  root(): Promise<E>;
  /** a folder's children, in listing order; `where` is the folder's path, for errors */
  children(dir: E, where: string): Promise<C[]>;
  /** the entry of a child found in its folder; `path` is its path, for errors */
  entryOf(child: C, path: string): Promise<E>;
  /** the child a path segment names (default: the same name) */
  find?(children: readonly C[], name: string): C | undefined;
  /** a regular file's bytes; `where` is its path, for errors */
  open(file: E, where: string): Promise<Readable>;
  /** what `list` and `stat` show of an entry (its handles left out) */
  publicEntry(entry: E): FsEntry;
}

export function treeReader<E extends FsEntry, C extends { name: string }>(
  t: TreeLookups<E, C>,
): Pick<FileSystemReader, 'list' | 'stat' | 'openRead'> {
  const find = t.find ?? ((children, name) => children.find((c) => c.name === name));
  const resolve = async (path: string): Promise<E> => {
    let cur = await t.root();
    let at = '';
    for (const s of pathSegments(path)) {
      if (cur.type !== 'directory') throw new FsError('NOT_A_DIRECTORY', `${at || '/'}: not a folder`);
      const children = await t.children(cur, at || '/');
      at += `/${s}`;
      const found = find(children, s);
      if (!found) throw new FsError('NOT_FOUND', `${at}: no such file or folder`);
      cur = await t.entryOf(found, at);
    }
    return cur;
  };
  const absolute = (path: string) => `/${pathSegments(path).join('/')}`;
  return {
    async list(dir, page) {
      const where = absolute(dir);
      const d = await resolve(dir);
      if (d.type !== 'directory') throw new FsError('NOT_A_DIRECTORY', `${where}: not a folder`);
      const children = await t.children(d, where);
      const entries: FsEntry[] = [];
      for (const c of pageOf(children, page))
        entries.push(t.publicEntry(await t.entryOf(c, `${where === '/' ? '' : where}/${c.name}`)));
      return { entries, total: children.length };
    },
    stat: async (path) => t.publicEntry(await resolve(path)),
    async openRead(path) {
      const where = absolute(path);
      const e = await resolve(path);
      if (e.type !== 'file') throw new FsError('NOT_A_FILE', `${where}: not a regular file`);
      return t.open(e, where);
    },
  };
}

const CHUNK = 4 * 1024 * 1024;

/** `size` bytes as a stream, read `readAt(pos, n)` a chunk at a time as the consumer asks. */
export function chunkedReadable(size: number, readAt: (pos: number, n: number) => Promise<Buffer>): Readable {
  let pos = 0;
  return new Readable({
    async read() {
      try {
        if (pos >= size) return void this.push(null);
        const n = Math.min(CHUNK, size - pos);
        const buf = await readAt(pos, n);
        pos += n;
        this.push(buf);
      } catch (err) {
        this.destroy(err as Error);
      }
    },
  });
}
