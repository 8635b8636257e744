// Writes walked filesystem entries as a .tar.gz, a .zip or into a folder, streaming file by file.
// Names are relative and checked; symlinks are stored as symlinks; when writing into a folder no
// path component is ever a symlink (so nothing lands outside the folder) and nothing is replaced.
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, symlink } from 'node:fs/promises';
import nodePath from 'node:path';
import { PassThrough, type Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import yazl from 'yazl';
import type { FileSystemReader } from '../disk/filesystem';
import { type WalkItem, walk } from '../disk/walk';

export type ArchiveFormat = 'tar.gz' | 'zip' | 'folder';

export function archiveFormatOf(target: string): ArchiveFormat {
  if (/\.(tar\.gz|tgz)$/i.test(target)) return 'tar.gz';
  if (/\.zip$/i.test(target)) return 'zip';
  return 'folder';
}

export interface ArchiveProgress {
  files: number;
  bytes: number;
}

export interface ArchiveSummary extends ArchiveProgress {
  folders: number;
  symlinks: number;
  /** Entries neither file, folder nor symlink (devices, sockets): skipped. */
  skipped: number;
}

/** What a restore will write: counted by a first walk, so progress has a total. */
export async function measure(fs: FileSystemReader, paths: string[]): Promise<ArchiveSummary> {
  const s: ArchiveSummary = { files: 0, bytes: 0, folders: 0, symlinks: 0, skipped: 0 };
  for await (const { entry } of walk(fs, paths)) count(s, entry.type, entry.size);
  return s;
}

function count(s: ArchiveSummary, type: string, size: number) {
  if (type === 'file') {
    s.files++;
    s.bytes += size;
  } else if (type === 'directory') s.folders++;
  else if (type === 'symlink') s.symlinks++;
  else s.skipped++;
}

function checkName(name: string): string {
  const segs = name.split('/');
  if (
    name === '' ||
    name.startsWith('/') ||
    segs.some((s) => s === '' || s === '.' || s === '..' || s.includes('\0'))
  ) {
    throw new Error(`refusing archive name ${JSON.stringify(name)}`);
  }
  return name;
}

const modeBits = (mode: number | undefined, fallback: number) => (mode ?? fallback) & 0o7777;

/** Counts bytes as they pass (progress), and checks the file has the size its entry says. */
function counter(item: WalkItem, onBytes: (n: number) => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      onBytes(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      cb(
        seen === item.entry.size
          ? null
          : new Error(`${item.path}: read ${seen} bytes, expected ${item.entry.size}`),
      );
    },
  });
}

/**
 * Writes `paths` of `fs` (folders recursively) to `out` (tar.gz / zip: a stream; folder: a path).
 * `onProgress` is called as bytes are written.
 */
export async function writeArchive(
  fs: FileSystemReader,
  paths: string[],
  format: ArchiveFormat,
  out: Writable | string,
  onProgress: (p: ArchiveProgress) => void = () => {},
): Promise<ArchiveSummary> {
  const summary: ArchiveSummary = { files: 0, bytes: 0, folders: 0, symlinks: 0, skipped: 0 };
  const progress = { files: 0, bytes: 0 };
  const onBytes = (n: number) => {
    progress.bytes += n;
    onProgress(progress);
  };
  const fileStream = async (item: WalkItem): Promise<Readable> =>
    (await fs.openRead(item.path)).pipe(counter(item, onBytes));

  if (format === 'folder') {
    const root = nodePath.resolve(out as string);
    await mkdir(root, { recursive: true });
    for await (const item of walk(fs, paths)) {
      const name = checkName(item.name);
      const target = nodePath.join(root, ...name.split('/'));
      await assertNoSymlinkBetween(root, target);
      const e = item.entry;
      if (e.type === 'directory')
        await mkdir(target, { mode: modeBits(e.mode, 0o755) | 0o700 }).catch(ignoreExisting);
      else if (e.type === 'symlink') await symlink(e.target ?? '', target);
      else if (e.type === 'file') {
        await pipeline(
          await fileStream(item),
          createWriteStream(target, { flags: 'wx', mode: modeBits(e.mode, 0o644) }),
        );
        progress.files++;
      }
      count(summary, e.type, e.size);
    }
    return summary;
  }

  if (format === 'tar.gz') {
    const pack = tar.pack();
    const done = pipeline(pack, createGzip({ level: 1 }), out as Writable);
    try {
      for await (const item of walk(fs, paths)) {
        const name = checkName(item.name);
        const e = item.entry;
        const common = {
          name,
          mode: modeBits(e.mode, e.type === 'directory' ? 0o755 : 0o644),
          ...(e.mtime ? { mtime: new Date(e.mtime) } : {}),
          ...(e.uid !== undefined ? { uid: e.uid, gid: e.gid ?? 0 } : {}),
        };
        if (e.type === 'directory') pack.entry({ ...common, type: 'directory' });
        else if (e.type === 'symlink') pack.entry({ ...common, type: 'symlink', linkname: e.target ?? '' });
        else if (e.type === 'file') {
          const sink = pack.entry({ ...common, type: 'file', size: e.size });
          await pipeline(await fileStream(item), sink);
          progress.files++;
        }
        count(summary, e.type, e.size);
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
      await done.catch(() => {});
      throw err;
    }
    await done;
    return summary;
  }

  const zip = new yazl.ZipFile();
  const done = pipeline(zip.outputStream as unknown as Readable, out as Writable);
  try {
    for await (const item of walk(fs, paths)) {
      const name = checkName(item.name);
      const e = item.entry;
      const mtime = e.mtime ? new Date(e.mtime) : new Date(0);
      if (e.type === 'directory')
        zip.addEmptyDirectory(name, { mtime, mode: 0o40000 | modeBits(e.mode, 0o755) });
      else if (e.type === 'symlink') {
        zip.addBuffer(Buffer.from(e.target ?? ''), name, { mtime, mode: 0o120000 | 0o777, compress: false });
      } else if (e.type === 'file') {
        // One file at a time: the next starts when this one has been read to its end.
        const stream = await fileStream(item);
        const ended = new Promise<void>((resolve, reject) => {
          stream.on('end', resolve);
          stream.on('error', reject);
        });
        const pass = new PassThrough();
        stream.pipe(pass);
        zip.addReadStream(pass, name, { mtime, mode: 0o100000 | modeBits(e.mode, 0o644), size: e.size });
        await ended;
        progress.files++;
      }
      count(summary, e.type, e.size);
    }
    zip.end();
  } catch (err) {
    (zip.outputStream as unknown as Readable).destroy(err as Error);
    await done.catch(() => {});
    throw err;
  }
  await done;
  return summary;
}

function ignoreExisting(e: NodeJS.ErrnoException): void {
  if (e.code !== 'EEXIST') throw e;
}

/** Refuses to write through a symlink: every folder between `root` and `target` must be a real folder. */
async function assertNoSymlinkBetween(root: string, target: string): Promise<void> {
  const rel = nodePath.relative(root, nodePath.dirname(target));
  if (rel.startsWith('..') || nodePath.isAbsolute(rel))
    throw new Error(`refusing to write outside ${root}: ${target}`);
  let at = root;
  for (const seg of rel === '' ? [] : rel.split(nodePath.sep)) {
    at = nodePath.join(at, seg);
    const st = await lstat(at);
    if (!st.isDirectory()) throw new Error(`refusing to write through ${at}: not a real folder`);
  }
}
