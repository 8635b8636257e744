// What every filesystem reader offers: list a folder page by page, stat, read a file as a stream.
// Paths are '/'-separated from the filesystem's root; readers never write to the device.
import type { Readable } from 'node:stream';

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface FsEntry {
  name: string;
  type: EntryType;
  size: number;
  /** ISO 8601 */
  mtime?: string;
  /** Unix permission bits (with the type bits), when the filesystem has them. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Identity inside the filesystem (inode, first cluster): recursive walks detect loops with it. */
  id?: string;
  /** Symlink target, as stored. */
  target?: string;
}

export interface FsPage {
  entries: FsEntry[];
  /** Entries in the folder (for paging). */
  total: number;
}

export interface FileSystemReader {
  /** "ext4", "fat32", "ntfs"… */
  readonly type: string;
  readonly label?: string;
  list(dir: string, page?: { offset?: number; limit?: number }): Promise<FsPage>;
  /** The entry at `path` (not followed if a symlink); FsError NOT_FOUND when absent. */
  stat(path: string): Promise<FsEntry>;
  /** The file's bytes; FsError when `path` is not a regular file. */
  openRead(path: string): Promise<Readable>;
  close(): Promise<void>;
}

export type FsErrorCode = 'NOT_FOUND' | 'NOT_A_DIRECTORY' | 'NOT_A_FILE' | 'CORRUPT' | 'UNSUPPORTED';

/** A problem inside a filesystem: says what and where; the caller adds which disk and partition. */
export class FsError extends Error {
  override readonly name = 'FsError';
  constructor(
    readonly code: FsErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Splits a path into its names; refuses `..` (nothing may escape the filesystem root). */
export function pathSegments(path: string): string[] {
  const parts = path.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..'))
    throw new FsError('NOT_FOUND', `path ${JSON.stringify(path)} may not contain ".."`);
  return parts;
}

export function pageOf<T>(all: T[], page: { offset?: number; limit?: number } = {}): T[] {
  const offset = Math.max(0, page.offset ?? 0);
  return page.limit === undefined ? all.slice(offset) : all.slice(offset, offset + Math.max(0, page.limit));
}
