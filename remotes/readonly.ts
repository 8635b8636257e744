// A read-only view of a remote: restore and listing tools get one, so they cannot damage backups.
import { type Remote, RemoteError } from './remote';

export function readOnly(inner: Remote): Remote {
  const refuse = (path: string): Promise<never> =>
    Promise.reject(new RemoteError(inner.id, path, 'EROFS', 'remote is opened read-only'));
  return {
    id: inner.id,
    url: inner.url,
    readFile: (path) => inner.readFile(path),
    createReadStream: (path, range) => inner.createReadStream(path, range),
    ...(inner.openRead ? { openRead: inner.openRead.bind(inner) } : {}),
    list: (dir) => inner.list(dir),
    stat: (path) => inner.stat(path),
    exists: (path) => inner.exists(path),
    // No inPlace (a merge is a write), no folderLocks (a lock is a write).
    writeFileAtomic: (path) => refuse(path),
    writeFileExclusive: (path) => refuse(path),
    createWriteStreamAtomic: (path) => refuse(path),
    delete: (path) => refuse(path),
    rename: (from) => refuse(from),
    copy: (_from, to) => refuse(to),
    checkWritable: () => refuse(''),
  };
}
