// The one narrow interface every backup target implements (restic's Backend idea): storage only.
// Retry, throttling, fault injection, read-only views… wrap a Remote (decorators), they are not flags.
// Paths are always relative to the remote's root, '/'-separated; `..` is refused.
import type { Readable, Writable } from 'node:stream';
import type { MergeOptions } from '../formats/vhd';

/** What went wrong, portable across implementations (errno-like where one exists). */
export type RemoteErrorCode =
  | 'ENOENT' // no such file or directory
  | 'EEXIST' // exclusive create found something there
  | 'EACCES' // permission denied
  | 'EROFS' // the remote (or this view of it) is read-only
  | 'ENOSPC' // out of space / quota
  | 'EISDIR'
  | 'ENOTDIR'
  | 'INVALID_PATH' // absolute, `..`, NUL…
  | 'UNAVAILABLE' // the remote itself is gone (root missing, mount vanished)
  | 'UNSUPPORTED' // URL scheme or operation this implementation does not have
  | 'ABORTED' // an atomic write used after abort()
  | 'BAD_KEY' // encrypted remote: missing, malformed or wrong key (refused before any write)
  | 'EIO';

/** Every failure of a Remote: says which remote, which path, and what kind of failure. */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  constructor(
    readonly remoteId: string,
    readonly path: string,
    readonly code: RemoteErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`remote ${JSON.stringify(remoteId)}: ${message}${path === '' ? '' : ` (${path})`}`, options);
  }
}

export const isRemoteError = (error: unknown, code?: RemoteErrorCode): error is RemoteError =>
  error instanceof RemoteError && (code === undefined || error.code === code);

export interface RemoteStat {
  size: number;
  mtimeMs: number;
  isDirectory: boolean;
}

/** Inclusive byte range, like HTTP Range and fs.createReadStream. */
export interface ByteRange {
  start: number;
  end?: number;
}

/**
 * A file being written under a temporary name in its final directory. Write to `stream` (pipeline
 * ends it, or commit() ends it); `commit()` makes the data durable and gives it its final name in one
 * step, so readers see the whole file or nothing; `abort()` removes the temporary file. Both are safe
 * to call more than once; after abort(), commit() fails.
 */
export interface AtomicWrite {
  readonly stream: Writable;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** A file open for reading at any offset; errors are RemoteErrors. */
export interface PositionalRead {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

export interface Remote {
  /** The configured id (config `remotes[].id`): every error names it. */
  readonly id: string;
  readonly url: string;

  /** Whole file in memory: metadata, locks, checksums — not disks. */
  readFile(path: string): Promise<Buffer>;
  /** Opens first (so ENOENT is a RemoteError here, not a stream event), then streams. */
  createReadStream(path: string, range?: ByteRange): Promise<Readable>;
  /**
   * Optional: the file open for reads at any offset, straight into the caller's buffer (a local
   * folder: one pread per read). Random access over many blocks (a restore reading a chain) then
   * costs no open and no stream per read. Where absent, ranged createReadStream calls do the same.
   */
  openRead?(path: string): Promise<PositionalRead>;

  /** Write-then-rename: the file at `path` is the old one or the complete new one, never a mix. */
  writeFileAtomic(path: string, data: Buffer | string): Promise<void>;
  /** Create only if nothing is there (EEXIST otherwise): the primitive locks are built on. */
  writeFileExclusive(path: string, data: Buffer | string): Promise<void>;
  createWriteStreamAtomic(path: string): Promise<AtomicWrite>;

  /** Entry names of a directory, sorted; ENOENT if the directory does not exist. */
  list(dir: string): Promise<string[]>;
  stat(path: string): Promise<RemoteStat>;
  exists(path: string): Promise<boolean>;
  /** Removes a file; already absent is success (deletes are retried after crashes). */
  delete(path: string): Promise<void>;
  /** Replaces `to` if it exists. */
  rename(from: string, to: string): Promise<void>;
  /**
   * `to` becomes a copy of `from` (replacing it), done by the storage itself where it can (S3:
   * server-side CopyObject), so the bytes need not pass through this process.
   */
  copy(from: string, to: string): Promise<void>;

  /**
   * Present only on remotes whose files can be rewritten in place (a local or mounted folder, not
   * encrypted). The others merge by other means (remotes/merge.ts); nothing reaches around a Remote.
   */
  readonly inPlace?: InPlaceEdits;

  /**
   * Present only on remotes that are a filesystem folder (local or mounted, encrypted or not), where
   * Xen Orchestra locks a VM folder with a lock folder beside it (remotes/vm-lock.ts).
   */
  readonly folderLocks?: FolderLocks;

  /** Writes and removes a probe file; throws a RemoteError naming the remote if that fails. */
  checkWritable(): Promise<void>;
}

/** What only a remote that can rewrite a file in place offers. */
export interface InPlaceEdits {
  /**
   * formats/vhd mergeVhdIntoParent on the differencing VHD at `childPath` (relative to the root):
   * crash-safe and resumable; on success the merged disk has the child's name and the parent is gone.
   */
  mergeVhdIntoParent(childPath: string, options?: MergeOptions): Promise<void>;
  /**
   * formats/vhd finishInterruptedMerges on the folder `dir`: finishes every merge left unfinished
   * there (ours, or Xen Orchestra's: same state files); returns the merged children's names.
   */
  finishInterruptedMerges(dir: string, options?: MergeOptions): Promise<string[]>;
}

/**
 * The lock Xen Orchestra takes on a folder of a filesystem remote (proper-lockfile): the folder
 * `<realpath of dir>.lock`, created by mkdir, alive while its mtime is recent. Every method takes the
 * locked folder `dir` (relative to the root), not the lock folder.
 */
export interface FolderLocks {
  /** Creates `dir` if needed, then its lock folder with these times; false when one is there. */
  create(dir: string, times: LockFolderTimes): Promise<boolean>;
  /** The lock folder's times; undefined when there is none. */
  times(dir: string): Promise<LockFolderTimes | undefined>;
  /** Sets the lock folder's times if it is there (never creates it); false when it is not. */
  touch(dir: string, times: LockFolderTimes): Promise<boolean>;
  /** Removes the lock folder; already gone is success. */
  remove(dir: string): Promise<void>;
  /**
   * Sets the mtime of the file at `path` without writing it; false when it is gone. A refresh
   * racing with a release cannot bring a removed lock record back this way.
   */
  touchFile(path: string, mtimeMs: number): Promise<boolean>;
}

/** A lock folder's access and modification times (proper-lockfile reads the mtime). */
export interface LockFolderTimes {
  atimeMs: number;
  mtimeMs: number;
}

/**
 * Canonical relative form of a remote path: '/'-separated, no empty or `.` segments. Refuses `..`,
 * NUL and backslashes instead of resolving them, so no caller can reach outside the remote's root.
 */
export function normalizeRemotePath(remoteId: string, path: string): string {
  if (typeof path !== 'string' || path.includes('\0') || path.includes('\\')) {
    throw new RemoteError(remoteId, String(path), 'INVALID_PATH', 'invalid path');
  }
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) {
    throw new RemoteError(remoteId, path, 'INVALID_PATH', 'path may not contain ".."');
  }
  return segments.join('/');
}

export function dirnameOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i === -1 ? '' : path.slice(0, i);
}

export function basenameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(...parts: string[]): string {
  return parts.filter((p) => p !== '').join('/');
}
