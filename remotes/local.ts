// A Remote on a local directory (also what NFS/SMB remotes will be once mounted).
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  copyFile,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import nodePath from 'node:path';
import type { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { finishInterruptedMerges, mergeVhdIntoParent } from '../formats/vhd';
import { FileWriter } from './file-writer';
import {
  type AtomicWrite,
  type ByteRange,
  basenameOf,
  type FolderLocks,
  type InPlaceEdits,
  normalizeRemotePath,
  type PositionalRead,
  type Remote,
  RemoteError,
  type RemoteErrorCode,
  type RemoteStat,
} from './remote';
import { temporaryNameFor } from './temporary-names';

const KNOWN_CODES = new Set<string>(['ENOENT', 'EEXIST', 'EACCES', 'EROFS', 'ENOSPC', 'EISDIR', 'ENOTDIR']);

export interface LocalRemoteOptions {
  id: string;
  /** Absolute directory; it must exist (a missing root means the remote is unavailable). */
  root: string;
  url?: string;
}

export function createLocalRemote(options: LocalRemoteOptions): Remote {
  return new LocalRemote(options.id, nodePath.resolve(options.root), options.url ?? `file://${options.root}`);
}

class LocalRemote implements Remote {
  constructor(
    readonly id: string,
    private readonly root: string,
    readonly url: string,
  ) {}

  private resolve(path: string): { rel: string; abs: string } {
    const rel = normalizeRemotePath(this.id, path);
    return { rel, abs: rel === '' ? this.root : nodePath.join(this.root, ...rel.split('/')) };
  }

  /** Turns an fs error into a RemoteError; a missing root becomes UNAVAILABLE, whatever the op. */
  private async fail(op: string, rel: string, error: unknown): Promise<never> {
    if (error instanceof RemoteError) throw error;
    const errno = (error as NodeJS.ErrnoException)?.code ?? 'EIO';
    if (errno === 'ENOENT' || errno === 'ENOTDIR') {
      const problem = await this.rootProblem();
      if (problem) {
        throw new RemoteError(this.id, rel, 'UNAVAILABLE', `${op}: ${problem}`, { cause: error });
      }
    }
    const code = (KNOWN_CODES.has(errno) ? errno : 'EIO') as RemoteErrorCode;
    throw new RemoteError(this.id, rel, code, `${op} failed: ${errno}`, { cause: error });
  }

  /** What is wrong with the root folder, in words; undefined when it is a folder. */
  private async rootProblem(): Promise<string | undefined> {
    try {
      const s = await stat(this.root);
      if (s.isDirectory()) return undefined;
      return `remote root ${this.root} is a file, not a folder`;
    } catch {
      return `remote root ${this.root} is missing`;
    }
  }

  /** Writes create parent directories: never let that recreate a vanished root. */
  private async assertRootAlive(rel: string): Promise<void> {
    const problem = await this.rootProblem();
    if (problem) throw new RemoteError(this.id, rel, 'UNAVAILABLE', problem);
  }

  private async guard<T>(op: string, rel: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      return this.fail(op, rel, error);
    }
  }

  async readFile(path: string): Promise<Buffer> {
    const { rel, abs } = this.resolve(path);
    return this.guard('read', rel, () => readFile(abs));
  }

  async createReadStream(path: string, range?: ByteRange): Promise<Readable> {
    const { rel, abs } = this.resolve(path);
    const handle = await this.guard('open', rel, () => open(abs, 'r'));
    // The stream owns the handle and closes it once (closing the fd twice could close a reused fd).
    return handle.createReadStream({ start: range?.start, end: range?.end, autoClose: true });
  }

  async openRead(path: string): Promise<PositionalRead> {
    const { rel, abs } = this.resolve(path);
    const handle = await this.guard('open', rel, () => open(abs, 'r'));
    let closed: Promise<void> | undefined;
    return {
      read: (buffer, offset, length, position) =>
        this.guard('read', rel, () => handle.read(buffer, offset, length, position)),
      stat: () => this.guard('stat', rel, async () => ({ size: (await handle.stat()).size })),
      // Closed once, whoever asks: closing a reused fd twice would close another file.
      close: () => {
        closed ??= handle.close().catch(() => {});
        return closed;
      },
    };
  }

  async writeFileAtomic(path: string, data: Buffer | string): Promise<void> {
    const write = await this.createWriteStreamAtomic(path);
    try {
      write.stream.end(data);
      await write.commit();
    } catch (error) {
      await write.abort();
      throw error;
    }
  }

  async writeFileExclusive(path: string, data: Buffer | string): Promise<void> {
    const { rel, abs } = this.resolve(path);
    await this.guard('create', rel, async () => {
      await this.assertRootAlive(rel);
      await mkdir(nodePath.dirname(abs), { recursive: true });
      // 'wx' is O_CREAT|O_EXCL: atomic on local filesystems and NFSv3+.
      const handle = await open(abs, 'wx');
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  async createWriteStreamAtomic(path: string): Promise<AtomicWrite> {
    const { rel, abs } = this.resolve(path);
    if (rel === '') throw new RemoteError(this.id, rel, 'INVALID_PATH', 'cannot write the root');
    const tempAbs = nodePath.join(nodePath.dirname(abs), temporaryNameFor(basenameOf(rel)));
    const handle = await this.guard('create', rel, async () => {
      await this.assertRootAlive(rel);
      await mkdir(nodePath.dirname(abs), { recursive: true });
      return open(tempAbs, 'wx');
    });
    const stream = new FileWriter(handle);
    let state: 'open' | 'committed' | 'aborted' = 'open';
    let streamError: unknown;
    stream.on('error', (error) => {
      streamError ??= error;
    });
    const closeHandle = () => handle.close().catch(() => {});
    return {
      stream,
      commit: async () => {
        if (state === 'committed') return;
        if (state === 'aborted') throw new RemoteError(this.id, rel, 'ABORTED', 'commit after abort');
        await this.guard('write', rel, async () => {
          if (!stream.writableEnded) stream.end();
          await finished(stream).catch((error) => {
            throw streamError ?? error;
          });
          if (streamError !== undefined) throw streamError;
          await handle.sync(); // data durable before the name points at it
          await closeHandle();
          await rename(tempAbs, abs);
          await syncDirectory(nodePath.dirname(abs)); // the rename itself durable
        });
        state = 'committed';
      },
      abort: async () => {
        if (state !== 'open') return;
        state = 'aborted';
        stream.destroy();
        await closeHandle();
        await rm(tempAbs, { force: true }).catch(() => {});
      },
    };
  }

  async list(dir: string): Promise<string[]> {
    const { rel, abs } = this.resolve(dir);
    const names = await this.guard('list', rel, () => readdir(abs));
    return names.sort();
  }

  async stat(path: string): Promise<RemoteStat> {
    const { rel, abs } = this.resolve(path);
    const s = await this.guard('stat', rel, () => stat(abs));
    return { size: s.size, mtimeMs: s.mtimeMs, isDirectory: s.isDirectory() };
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (error) {
      if (error instanceof RemoteError && error.code === 'ENOENT') return false;
      throw error;
    }
  }

  async delete(path: string): Promise<void> {
    const { rel, abs } = this.resolve(path);
    if (rel === '') throw new RemoteError(this.id, rel, 'INVALID_PATH', 'cannot delete the root');
    try {
      await unlink(abs);
    } catch (error) {
      const errno = (error as NodeJS.ErrnoException).code;
      // Already gone is success, but only if the remote is still there.
      if (errno === 'ENOENT') {
        const alive = await stat(this.root).then(
          () => true,
          () => false,
        );
        if (alive) return;
      }
      await this.fail('delete', rel, error);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.resolve(from);
    const target = this.resolve(to);
    await this.guard('rename', source.rel, async () => {
      await this.assertRootAlive(source.rel);
      await mkdir(nodePath.dirname(target.abs), { recursive: true });
      await rename(source.abs, target.abs);
    });
  }

  async copy(from: string, to: string): Promise<void> {
    const source = this.resolve(from);
    const target = this.resolve(to);
    await this.guard('copy', source.rel, async () => {
      await this.assertRootAlive(source.rel);
      await mkdir(nodePath.dirname(target.abs), { recursive: true });
      // Under a temporary name then renamed: `to` is the old file or the whole copy.
      const temp = nodePath.join(nodePath.dirname(target.abs), temporaryNameFor(basenameOf(target.rel)));
      try {
        await copyFile(source.abs, temp).catch(async (error: NodeJS.ErrnoException) => {
          // Some filesystems (FUSE shares such as smbnetfs) refuse the kernel's copy: copy by streaming.
          if (error.code === 'ENOENT') throw error;
          await rm(temp, { force: true });
          await pipeline(createReadStream(source.abs), createWriteStream(temp, { flags: 'wx' }));
        });
        await rename(temp, target.abs);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
    });
  }

  readonly inPlace: InPlaceEdits = {
    mergeVhdIntoParent: (childPath, options) => {
      const { rel, abs } = this.resolve(childPath);
      return this.guard('merge', rel, async () => {
        await this.assertRootAlive(rel);
        await mergeVhdIntoParent(abs, options);
      });
    },
    finishInterruptedMerges: (dir, options) => {
      const { rel, abs } = this.resolve(dir);
      return this.guard('merge', rel, async () => {
        await this.assertRootAlive(rel);
        const present = await stat(abs).then(
          (s) => s.isDirectory(),
          () => false,
        );
        return present ? finishInterruptedMerges(abs, options) : [];
      });
    },
  };

  /** proper-lockfile's lock folder of `dir`: `<realpath of dir>.lock` (so XO, which resolves it too, finds it). */
  private async lockFolder(dir: string, create: boolean): Promise<string | undefined> {
    const { abs } = this.resolve(dir);
    if (create) await mkdir(abs, { recursive: true });
    const real = await realpath(abs).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    return real === undefined ? undefined : `${real}.lock`;
  }

  readonly folderLocks: FolderLocks = {
    create: (dir, times) =>
      this.guard('lock', dir, async () => {
        await this.assertRootAlive(dir);
        const lock = (await this.lockFolder(dir, true))!;
        try {
          await mkdir(lock);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
          throw e;
        }
        await utimes(lock, new Date(times.atimeMs), new Date(times.mtimeMs));
        return true;
      }),
    times: (dir) =>
      this.guard('lock', dir, async () => {
        const lock = await this.lockFolder(dir, false);
        if (lock === undefined) return undefined;
        return stat(lock).then((s) => ({ atimeMs: s.atimeMs, mtimeMs: s.mtimeMs }), absentAs(undefined));
      }),
    touch: (dir, times) =>
      this.guard('lock', dir, async () => {
        const lock = await this.lockFolder(dir, false);
        if (lock === undefined) return false;
        const done = utimes(lock, new Date(times.atimeMs), new Date(times.mtimeMs));
        return done.then(() => true, absentAs(false));
      }),
    remove: (dir) =>
      this.guard('unlock', dir, async () => {
        const lock = await this.lockFolder(dir, false);
        if (lock !== undefined) await rmdir(lock).catch(absentAs(undefined));
      }),
    touchFile: (path, mtimeMs) => {
      const { rel, abs } = this.resolve(path);
      return this.guard('touch', rel, () =>
        utimes(abs, new Date(mtimeMs), new Date(mtimeMs)).then(() => true, absentAs(false)),
      );
    },
  };

  async checkWritable(): Promise<void> {
    // Random, not time-based: concurrent probes (many VMs of one run) must not share a name.
    const probe = `.xcpb-write-probe-${process.pid}-${randomBytes(6).toString('hex')}`;
    await this.guard('write probe', '', async () => {
      const s = await stat(this.root);
      if (!s.isDirectory()) throw Object.assign(new Error('root is not a directory'), { code: 'ENOTDIR' });
      await writeFile(this.resolve(probe).abs, 'xcpb');
      await unlink(this.resolve(probe).abs);
    });
  }
}

/** A catch handler: ENOENT becomes `value`, anything else is thrown again. */
const absentAs =
  <T>(value: T) =>
  (e: NodeJS.ErrnoException): T => {
    if (e.code === 'ENOENT') return value;
    throw e;
  };

async function syncDirectory(dir: string): Promise<void> {
  // fsync on a directory is how POSIX makes a rename durable; some filesystems refuse it (EINVAL).
  const handle = await open(dir, 'r').catch(() => undefined);
  if (handle === undefined) return;
  await handle.sync().catch(() => {});
  await handle.close();
}
