import { type FileHandle, open } from 'node:fs/promises';
import { applyBitmapZeroes, Bat, batSize, blockCount, STORED_BLOCK_SIZE } from './bat';
import { BITMAP_SIZE, DiskType, FOOTER_SIZE, HEADER_SIZE, VHD_BLOCK_SIZE } from './constants';
import { VhdError, type VhdProblemCode } from './errors';
import { decodeFooter, type VhdFooter } from './footer';
import { decodeHeader, type VhdHeader } from './header';

/**
 * What a VHD file is read through: a local file handle, or ranged reads of a remote (remotes/). The
 * subset of fs.FileHandle the reader needs.
 */
export interface ReadHandle {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/** Random access to one VHD file (fixed, dynamic or differencing), without its parents. */
export interface VhdFile<H extends ReadHandle = FileHandle> {
  readonly path: string;
  readonly footer: VhdFooter;
  /** Undefined for fixed disks. */
  readonly header: VhdHeader | undefined;
  /** Undefined for fixed disks. */
  readonly bat: Bat | undefined;
  readonly size: number;
  readonly uuid: string;
  readonly diskType: number;
  readonly fileSize: number;
  /** Blocks stored in this file (every block for a fixed disk). */
  blocks(): number[];
  hasBlock(index: number): boolean;
  /** The block as stored: sector bitmap and 2 MiB of data; undefined when not allocated. */
  readBlockRaw(index: number): Promise<{ bitmap: Buffer; data: Buffer } | undefined>;
  /** The block as this file alone describes it (absent → zeros, clear bitmap bits → zeros). */
  readBlock(index: number): Promise<Buffer>;
  /** Bytes of the virtual disk as this file alone describes it. */
  readAt(offset: number, length: number): Promise<Buffer>;
  /** Access to the handle, for writers such as merge. */
  readonly handle: H;
  close(): Promise<void>;
}

async function readExactly(fh: ReadHandle, offset: number, length: number): Promise<Buffer> {
  // allocUnsafe is fine: only the bytes actually read are returned.
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

export interface OpenOptions {
  /** Open read-write (merge). */
  writable?: boolean;
}

export async function openVhdFile(path: string, opts: OpenOptions = {}): Promise<VhdFile> {
  let fh: FileHandle;
  try {
    fh = await open(path, opts.writable ? 'r+' : 'r');
  } catch (e: any) {
    if (e?.code === 'ENOENT') throw new VhdError('NOT_FOUND', 'file does not exist', path);
    throw e;
  }
  return openVhdHandle(path, fh);
}

/** Opens a VHD read through `handle` (closed on failure); `path` names it in errors and chains. */
export async function openVhdHandle<H extends ReadHandle>(path: string, handle: H): Promise<VhdFile<H>> {
  try {
    return await load(path, handle);
  } catch (e) {
    await handle.close();
    throw e;
  }
}

async function load<H extends ReadHandle>(path: string, fh: H): Promise<VhdFile<H>> {
  const fail = (code: VhdProblemCode, problem: string): never => {
    throw new VhdError(code, problem, path);
  };
  const decode = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      if (e instanceof VhdError) fail(e.code, e.problem);
      throw e;
    }
  };
  const fileSize = (await fh.stat()).size;
  if (fileSize < FOOTER_SIZE) fail('TRUNCATED', `file is ${fileSize} bytes, too short for a footer`);
  const tail = await readExactly(fh, fileSize - FOOTER_SIZE, FOOTER_SIZE);
  let footer: VhdFooter;
  try {
    footer = decodeFooter(tail, 'trailing footer');
  } catch (e) {
    if (!(e instanceof VhdError)) throw e;
    // A valid copy at offset 0 with a damaged end means the file was cut short.
    const head = await readExactly(fh, 0, FOOTER_SIZE);
    let headOk = false;
    try {
      decodeFooter(head);
      headOk = true;
    } catch {}
    if (headOk && e.code === 'BAD_COOKIE') fail('TRUNCATED', 'no footer at the end of the file (truncated?)');
    fail(e.code, e.problem);
  }
  footer = footer!;
  const size = footer.currentSize;
  if (footer.diskType === DiskType.fixed) {
    if (fileSize - FOOTER_SIZE < size)
      fail('TRUNCATED', `fixed disk of ${size} bytes in a ${fileSize}-byte file`);
    return makeFile(path, fh, footer, undefined, undefined, fileSize);
  }
  const dataOffset = footer.dataOffset!;
  if (dataOffset + HEADER_SIZE > fileSize - FOOTER_SIZE) {
    fail('TRUNCATED', `dynamic header at ${dataOffset} is past the end of the file`);
  }
  const headerBytes = await readExactly(fh, dataOffset, HEADER_SIZE);
  const header = decode(() => decodeHeader(headerBytes));
  const needed = blockCount(size);
  if (header.maxTableEntries < needed) {
    fail('BAD_FIELD', `BAT has ${header.maxTableEntries} entries, a ${size}-byte disk needs ${needed}`);
  }
  const batBytes = batSize(header.maxTableEntries);
  if (header.tableOffset + header.maxTableEntries * 4 > fileSize - FOOTER_SIZE) {
    fail('TRUNCATED', `BAT at ${header.tableOffset} (${batBytes} bytes) is past the end of the file`);
  }
  const bat = Bat.decode(
    await readExactly(fh, header.tableOffset, header.maxTableEntries * 4),
    header.maxTableEntries,
  );
  const limit = fileSize - FOOTER_SIZE;
  for (let i = 0; i < bat.length; i++) {
    const off = bat.offset(i);
    if (off === undefined) continue;
    if (off + STORED_BLOCK_SIZE > limit) {
      fail('BAT_PAST_END', `BAT entry ${i} points at offset ${off}, past the end of the data (${limit})`);
    }
    if (off < FOOTER_SIZE) fail('BAT_OVERLAP', `BAT entry ${i} points into the footer copy`);
  }
  return makeFile(path, fh, footer, header, bat, fileSize);
}

function makeFile<H extends ReadHandle>(
  path: string,
  fh: H,
  footer: VhdFooter,
  header: VhdHeader | undefined,
  bat: Bat | undefined,
  fileSize: number,
): VhdFile<H> {
  const size = footer.currentSize;
  const count = blockCount(size);
  const fixed = footer.diskType === DiskType.fixed;
  const hasBlock = (i: number) => i >= 0 && i < count && (fixed || bat!.has(i));
  const readBlockRaw = async (i: number) => {
    if (!hasBlock(i)) return undefined;
    if (fixed) {
      const data = Buffer.alloc(VHD_BLOCK_SIZE);
      const len = Math.min(VHD_BLOCK_SIZE, size - i * VHD_BLOCK_SIZE);
      await fh.read(data, 0, len, i * VHD_BLOCK_SIZE);
      return { bitmap: Buffer.alloc(BITMAP_SIZE, 0xff), data };
    }
    const off = bat!.offset(i)!;
    const both = await readExactly(fh, off, STORED_BLOCK_SIZE);
    if (both.length < STORED_BLOCK_SIZE) throw new VhdError('TRUNCATED', `block ${i} is cut short`, path);
    return { bitmap: both.subarray(0, BITMAP_SIZE), data: both.subarray(BITMAP_SIZE) };
  };
  const readBlock = async (i: number) => {
    const raw = await readBlockRaw(i);
    if (!raw) return Buffer.alloc(VHD_BLOCK_SIZE);
    applyBitmapZeroes(raw.bitmap, raw.data);
    return raw.data;
  };
  return {
    path,
    footer,
    header,
    bat,
    size,
    uuid: footer.uuid,
    diskType: footer.diskType,
    fileSize,
    handle: fh,
    blocks: () =>
      fixed ? Array.from({ length: count }, (_, i) => i) : bat!.present().filter((i) => i < count),
    hasBlock,
    readBlockRaw,
    readBlock,
    readAt: (offset, length) => readAtVia(size, readBlock, offset, length),
    close: () => fh.close(),
  };
}

/** Reads [offset, offset+length) of a virtual disk given a block reader; clipped to the disk size. */
export async function readAtVia(
  size: number,
  readBlock: (i: number) => Promise<Buffer>,
  offset: number,
  length: number,
): Promise<Buffer> {
  if (offset < 0 || length < 0 || offset + length > size) {
    throw new RangeError(`read of ${length} bytes at ${offset} is outside a ${size}-byte disk`);
  }
  const out = Buffer.alloc(length);
  let o = 0;
  while (o < length) {
    const pos = offset + o;
    const bi = Math.floor(pos / VHD_BLOCK_SIZE);
    const within = pos % VHD_BLOCK_SIZE;
    const n = Math.min(length - o, VHD_BLOCK_SIZE - within);
    const block = await readBlock(bi);
    block.copy(out, o, within, within + n);
    o += n;
  }
  return out;
}
