// ext2/3/4 through balena's `ext2fs` (e2fsprogs' libext2fs compiled to WebAssembly): the reference
// implementation of the format, reading through our device. libext2fs opens read-write; whatever it
// would write (superblock bookkeeping at unmount) is discarded here, so the backup is never changed.
// The journal is not replayed (as `debugfs -c`): a crash-consistent snapshot shows the last
// committed state.
import { Readable } from 'node:stream';
import type { BlockDevice } from './device';
import { type FileSystemReader, type FsEntry, FsError, pageOf, pathSegments } from './filesystem';

interface Ext2Stats {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
}

interface Ext2fsModule {
  mount(disk: unknown, offset: number): Promise<any>;
  umount(fs: unknown): Promise<void>;
}

let loaded: Promise<Ext2fsModule> | undefined;
/**
 * Emscripten's glue registers process-wide uncaughtException / unhandledRejection handlers that
 * rethrow (and print the whole generated file): a worker process must keep its own behaviour, so
 * the handlers it adds while loading are removed.
 */
function ext2fs(): Promise<Ext2fsModule> {
  loaded ??= (async () => {
    const before = {
      uncaughtException: process.listeners('uncaughtException'),
      unhandledRejection: process.listeners('unhandledRejection'),
    };
    // @ts-expect-error: no types published
    const mod = (await import('ext2fs')) as Ext2fsModule & { default?: Ext2fsModule };
    for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
      for (const l of process.listeners(event as 'uncaughtException')) {
        if (!(before[event] as unknown[]).includes(l))
          process.removeListener(event as 'uncaughtException', l);
      }
    }
    return mod.default ?? mod;
  })();
  return loaded;
}

// libext2fs (WASM) keeps one global state: mounts and calls go one at a time.
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => {});
  return run;
}

const errnoCode = (e: unknown): string | undefined => (e as { code?: string }).code;

function mapError(e: unknown, path: string): never {
  const code = errnoCode(e);
  if (code === 'ENOENT') throw new FsError('NOT_FOUND', `${path}: no such file or folder`);
  if (code === 'ENOTDIR') throw new FsError('NOT_A_DIRECTORY', `${path}: not a folder`);
  throw new FsError('CORRUPT', `${path}: ${(e as Error).message}`);
}

export async function openExtFs(dev: BlockDevice, type = 'ext4'): Promise<FileSystemReader> {
  const disk = {
    async read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number) {
      const n = Math.max(0, Math.min(length, dev.size - fileOffset));
      if (n > 0) (await dev.read(fileOffset, n)).copy(buffer, bufferOffset);
      if (n < length) buffer.fill(0, bufferOffset + n, bufferOffset + length);
      return { bytesRead: length, buffer };
    },
    async write(buffer: Buffer, _o: number, length: number) {
      return { bytesWritten: length, buffer }; // discarded: read-only view
    },
    async discard() {},
    async flush() {},
  };
  let fs: any;
  try {
    const { mount } = await ext2fs();
    fs = await serial(() => mount(disk, 0));
  } catch (e) {
    throw new FsError('CORRUPT', `not a readable ext2/3/4 filesystem: ${(e as Error).message}`);
  }
  const p = fs.promises;
  const abs = (path: string) => `/${pathSegments(path).join('/')}`;
  const entry = async (path: string, name: string): Promise<FsEntry> => {
    let st: Ext2Stats;
    try {
      st = await serial(() => p.lstat(path));
    } catch (e) {
      mapError(e, path);
    }
    const type = st.isSymbolicLink()
      ? 'symlink'
      : st.isDirectory()
        ? 'directory'
        : st.isFile()
          ? 'file'
          : 'other';
    const out: FsEntry = {
      name,
      type,
      size: st.size,
      ...(Number.isNaN(st.mtime.getTime()) ? {} : { mtime: st.mtime.toISOString() }),
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      id: `ino:${st.ino}`,
    };
    if (type === 'symlink') {
      const t = await serial(() => p.readlink(path, { encoding: 'buffer' }));
      out.target = Buffer.from(t as Uint8Array).toString('utf8');
    }
    return out;
  };
  return {
    type,
    async list(dir, page) {
      const path = abs(dir);
      const st = await entry(path, '');
      if (st.type !== 'directory') throw new FsError('NOT_A_DIRECTORY', `${path}: not a folder`);
      let names: string[];
      try {
        const raw = (await serial(() => p.readdir(path, { encoding: 'buffer' }))) as Uint8Array[];
        names = raw.map((b) => Buffer.from(b).toString('utf8')).filter((n) => n !== '.' && n !== '..');
      } catch (e) {
        mapError(e, path);
      }
      names.sort();
      const slice = pageOf(names, page);
      const entries: FsEntry[] = [];
      for (const n of slice) entries.push(await entry(path === '/' ? `/${n}` : `${path}/${n}`, n));
      return { entries, total: names.length };
    },
    stat: (path) => entry(abs(path), pathSegments(path).at(-1) ?? ''),
    async openRead(path) {
      const full = abs(path);
      const st = await entry(full, '');
      if (st.type !== 'file') throw new FsError('NOT_A_FILE', `${full}: not a regular file`);
      let fh: any;
      try {
        fh = await serial(() => p.open(full, 'r'));
      } catch (e) {
        mapError(e, full);
      }
      // Sequential reads at the file's own position: the binding passes an explicit position as a
      // 32-bit number, which wraps past 4 GiB, while libext2fs keeps the file position in 64 bits.
      let pos = 0;
      const chunk = 1024 * 1024;
      return new Readable({
        highWaterMark: chunk,
        async read() {
          try {
            const n = Math.min(chunk, st.size - pos);
            if (n <= 0) {
              this.push(null);
              return;
            }
            const buf = Buffer.alloc(n);
            const { bytesRead } = (await serial(() => fh.read(buf, 0, n, null))) as { bytesRead: number };
            if (bytesRead <= 0) throw new FsError('CORRUPT', `${full}: ends at ${pos} of ${st.size} bytes`);
            pos += bytesRead;
            this.push(bytesRead === n ? buf : buf.subarray(0, bytesRead));
          } catch (e) {
            this.destroy(e as Error);
          }
        },
        destroy(err, cb) {
          serial(() => fh.close()).then(
            () => cb(err),
            () => cb(err),
          );
        },
      });
    },
    close: async () => {
      const { umount } = await ext2fs();
      await serial(() => umount(fs));
    },
  };
}
