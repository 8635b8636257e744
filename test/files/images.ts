// Disk images built with Debian's own tools, for the file-restore tests: the tools that made the
// filesystem are the judges of what is in it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

export const sh = promisify(execFile);

export async function sparseFile(file: string, size: number): Promise<void> {
  const fh = await open(file, 'w');
  await fh.truncate(size);
  await fh.close();
}

/** Copies `src` into `disk` at byte `offset` (sparse: zero blocks are skipped). */
export async function placeAt(disk: string, src: string, offset: number): Promise<void> {
  await sh('dd', [
    `if=${src}`,
    `of=${disk}`,
    'bs=1M',
    `seek=${offset / (1 << 20)}`,
    'conv=notrunc,sparse',
    'status=none',
  ]);
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** An ext4 image of `size` bytes holding the folder `src` (mke2fs -d). */
export async function ext4Image(img: string, size: number, src: string): Promise<void> {
  await sparseFile(img, size);
  await sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', src, img]);
}

/** A FAT image (mkfs.vfat -F bits) with the files of `src` copied in by mtools. */
export async function fatImage(
  img: string,
  size: number,
  bits: 12 | 16 | 32,
  src: string,
  label = 'TESTFAT',
): Promise<void> {
  await sparseFile(img, size);
  await sh('mkfs.vfat', ['-F', String(bits), '-n', label, img]);
  await sh('mcopy', ['-s', '-i', img, ...(await listTop(src)), '::/'], {
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });
}

async function listTop(dir: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir(dir)).map((n) => path.join(dir, n));
}

/** Writes files from a { path: content } map under `dir`. */
export async function makeTree(dir: string, files: Record<string, string | Buffer>): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  for (const [p, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await writeFile(path.join(dir, p), content);
  }
}
