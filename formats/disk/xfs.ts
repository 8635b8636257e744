// XFS reader (our own, from the XFS on-disk format documentation): superblock, inodes (v2 and v3),
// data forks in local, extent and B+tree form, directories in short, block, leaf and node form (data
// blocks are read in logical order; leaf/free blocks are not needed to list), symlinks inline or in
// blocks. Unwritten extents and holes read as zeros. Read-only; the log is not replayed.
import { Readable } from 'node:stream';
import type { BlockDevice } from './device';
import { type FileSystemReader, type FsEntry, FsError } from './filesystem';
import { chunkedReadable, treeReader } from './tree-reader';

const corrupt = (m: string) => new FsError('CORRUPT', m);
const DIR_LEAF_OFFSET = 32 * 1024 * 1024 * 1024; // directory data blocks live below 32 GiB

interface Extent {
  off: number; // file block
  block: number; // fs block (agno << agblklog | agbno)
  count: number;
  unwritten: boolean;
}

interface Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime?: string;
  format: number;
  fork: Buffer;
}

function decodeExtent(b: Buffer, o: number): Extent {
  const hi = b.readBigUInt64BE(o);
  const lo = b.readBigUInt64BE(o + 8);
  return {
    unwritten: hi >> 63n === 1n,
    off: Number((hi >> 9n) & ((1n << 54n) - 1n)),
    block: Number(((hi & 0x1ffn) << 43n) | (lo >> 21n)),
    count: Number(lo & 0x1fffffn),
  };
}

export async function openXfs(dev: BlockDevice): Promise<FileSystemReader> {
  const sb = await dev.read(0, 512);
  if (sb.toString('latin1', 0, 4) !== 'XFSB') throw corrupt('XFS: no superblock');
  const blockSize = sb.readUInt32BE(4);
  const rootIno = Number(sb.readBigUInt64BE(56));
  const agBlocks = sb.readUInt32BE(84);
  const agCount = sb.readUInt32BE(88);
  const version = sb.readUInt16BE(100) & 0xf;
  const inodeSize = sb.readUInt16BE(104);
  const inopbLog = sb[123];
  const agBlkLog = sb[124];
  const dirBlkLog = sb[192];
  const v5 = version === 5;
  const ftype = v5 ? (sb.readUInt32BE(216) & 1) !== 0 : (sb.readUInt32BE(200) & 0x200) !== 0; // incompat ftype / features2 ftype
  if (
    blockSize < 512 ||
    blockSize > 65536 ||
    blockSize & (blockSize - 1) ||
    inodeSize < 256 ||
    inodeSize > 2048
  ) {
    throw corrupt(`XFS superblock: block size ${blockSize}, inode size ${inodeSize}`);
  }
  if (agCount === 0 || agBlocks === 0 || agBlkLog > 31)
    throw corrupt('XFS superblock: bad allocation groups');
  const label = sb.toString('latin1', 108, 120).replace(/\0.*$/s, '');
  const dirBlockSize = blockSize << dirBlkLog;
  const fsbToByte = (fsb: number) => {
    const agno = Math.floor(fsb / 2 ** agBlkLog);
    const agbno = fsb % 2 ** agBlkLog;
    if (agno >= agCount || agbno >= agBlocks) throw corrupt(`XFS: block ${fsb} is outside the filesystem`);
    return (agno * agBlocks + agbno) * blockSize;
  };

  const readInode = async (ino: number, where: string): Promise<Inode> => {
    const agno = Math.floor(ino / 2 ** (agBlkLog + inopbLog));
    const agbno = Math.floor(ino / 2 ** inopbLog) % 2 ** agBlkLog;
    const idx = ino % 2 ** inopbLog;
    if (agno >= agCount || agbno >= agBlocks)
      throw corrupt(`${where}: inode ${ino} is outside the filesystem`);
    const at = (agno * agBlocks + agbno) * blockSize + idx * inodeSize;
    const b = await dev.read(at, inodeSize);
    if (b.toString('latin1', 0, 2) !== 'IN') throw corrupt(`${where}: inode ${ino} is damaged (no IN magic)`);
    const iver = b[4];
    const core = iver >= 3 ? 176 : 100;
    const forkOff = b[0x52];
    const forkEnd = forkOff ? core + forkOff * 8 : inodeSize;
    let mtime: string | undefined;
    const bigtime = iver >= 3 && (b.readBigUInt64BE(0x78) & 0x8n) !== 0n;
    if (bigtime) {
      const ns = b.readBigUInt64BE(0x28);
      mtime = new Date(Number(ns / 1000000n) - 2 ** 31 * 1000).toISOString();
    } else {
      const s = b.readInt32BE(0x28);
      mtime = new Date(s * 1000 + Math.floor(b.readUInt32BE(0x2c) / 1e6)).toISOString();
    }
    return {
      ino,
      mode: b.readUInt16BE(2),
      uid: b.readUInt32BE(8),
      gid: b.readUInt32BE(12),
      size: Number(b.readBigUInt64BE(0x38)),
      mtime,
      format: b[5],
      fork: b.subarray(core, Math.min(forkEnd, inodeSize)),
    };
  };

  /** The data fork's extents, from the inode (extents) or its B+tree (btree). */
  const extents = async (inode: Inode, where: string): Promise<Extent[]> => {
    const f = inode.fork;
    if (inode.format === 2) {
      const n = Math.floor(f.length / 16);
      const out: Extent[] = [];
      for (let i = 0; i < n; i++) {
        const e = decodeExtent(f, i * 16);
        if (e.count === 0) break;
        out.push(e);
      }
      return out;
    }
    if (inode.format !== 3) throw corrupt(`${where}: unexpected data fork format ${inode.format}`);
    const level = f.readUInt16BE(0);
    const numrecs = f.readUInt16BE(2);
    const maxrecs = Math.floor((f.length - 4) / 16);
    const out: Extent[] = [];
    const seen = new Set<number>();
    const hdr = v5 ? 72 : 24;
    const visit = async (fsb: number, depth: number): Promise<void> => {
      if (seen.has(fsb) || depth > 16) throw corrupt(`${where}: extent B+tree loops`);
      seen.add(fsb);
      const blk = await dev.read(fsbToByte(fsb), blockSize);
      const magic = blk.toString('latin1', 0, 4);
      if (magic !== 'BMA3' && magic !== 'BMAP') throw corrupt(`${where}: damaged extent B+tree block`);
      const lvl = blk.readUInt16BE(4);
      const recs = blk.readUInt16BE(6);
      if (lvl === 0) {
        for (let i = 0; i < recs; i++) out.push(decodeExtent(blk, hdr + i * 16));
      } else {
        const max = Math.floor((blockSize - hdr) / 16);
        for (let i = 0; i < recs; i++)
          await visit(Number(blk.readBigUInt64BE(hdr + max * 8 + i * 8)), depth + 1);
      }
    };
    if (level === 0) throw corrupt(`${where}: B+tree root with level 0`);
    for (let i = 0; i < numrecs; i++) await visit(Number(f.readBigUInt64BE(4 + maxrecs * 8 + i * 8)), 0);
    return out.sort((a, b) => a.off - b.off);
  };

  /** Bytes [pos, pos+n) of a file given its extents (holes and unwritten extents are zeros). */
  const readExtents = async (exts: Extent[], pos: number, n: number): Promise<Buffer> => {
    const out = Buffer.alloc(n);
    for (const e of exts) {
      if (e.unwritten) continue;
      const s = Math.max(pos, e.off * blockSize);
      const t = Math.min(pos + n, (e.off + e.count) * blockSize);
      if (s >= t) continue;
      (await dev.read(fsbToByte(e.block) + (s - e.off * blockSize), t - s)).copy(out, s - pos);
    }
    return out;
  };

  interface Child {
    ino: number;
    name: string;
  }
  const listDir = async (inode: Inode, where: string): Promise<Child[]> => {
    const out: Child[] = [];
    if (inode.format === 1) {
      const f = inode.fork;
      const count = f[0];
      const i8 = f[1];
      const inoLen = i8 ? 8 : 4;
      let o = 2 + inoLen;
      for (let i = 0; i < (i8 || count); i++) {
        const len = f[o];
        const name = f.toString('utf8', o + 3, o + 3 + len);
        const io = o + 3 + len + (ftype ? 1 : 0);
        if (io + inoLen > f.length) throw corrupt(`${where}: short-form folder is damaged`);
        out.push({ name, ino: inoLen === 8 ? Number(f.readBigUInt64BE(io)) : f.readUInt32BE(io) });
        o = io + inoLen;
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    const exts = (await extents(inode, where)).filter((e) => e.off * blockSize < DIR_LEAF_OFFSET);
    const fsbPerDirBlock = dirBlockSize / blockSize;
    for (const e of exts) {
      for (let b = 0; b < e.count; b += fsbPerDirBlock) {
        const blk = await readExtents([e], (e.off + b) * blockSize, dirBlockSize);
        const magic = blk.toString('latin1', 0, 4);
        const hdr = v5 ? 64 : 16;
        let end = dirBlockSize;
        if (magic === 'XDB3' || magic === 'XD2B') {
          const count = blk.readUInt32BE(dirBlockSize - 8);
          end = dirBlockSize - 8 - count * 8;
        } else if (magic !== 'XDD3' && magic !== 'XD2D') throw corrupt(`${where}: damaged folder block`);
        for (let o = hdr; o < end; ) {
          if (blk.readUInt16BE(o) === 0xffff) {
            const len = blk.readUInt16BE(o + 2);
            if (len < 8) throw corrupt(`${where}: damaged free space in a folder block`);
            o += len;
            continue;
          }
          const ino = Number(blk.readBigUInt64BE(o));
          const len = blk[o + 8];
          const name = blk.toString('utf8', o + 9, o + 9 + len);
          const size = Math.ceil((8 + 1 + len + (ftype ? 1 : 0) + 2) / 8) * 8;
          if (len === 0 || o + size > end) throw corrupt(`${where}: damaged folder entry`);
          if (name !== '.' && name !== '..') out.push({ ino, name });
          o += size;
        }
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  };

  const typeOf = (mode: number) => {
    const t = mode & 0o170000;
    return t === 0o040000 ? 'directory' : t === 0o100000 ? 'file' : t === 0o120000 ? 'symlink' : 'other';
  };

  const entryOf = async (ino: number, name: string, where: string): Promise<FsEntry & { inode: Inode }> => {
    const inode = await readInode(ino, where);
    const type = typeOf(inode.mode);
    const e: FsEntry & { inode: Inode } = {
      name,
      type,
      size: inode.size,
      ...(inode.mtime ? { mtime: inode.mtime } : {}),
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      id: `ino:${ino}`,
      inode,
    };
    if (type === 'symlink') {
      if (inode.size > 4096) throw corrupt(`${where}: symlink of ${inode.size} bytes`);
      if (inode.format === 1) e.target = inode.fork.toString('utf8', 0, inode.size);
      else {
        const raw = await readExtents(
          await extents(inode, where),
          0,
          Math.ceil(inode.size / blockSize) * blockSize + (v5 ? 56 : 0),
        );
        const body = v5 && raw.toString('latin1', 0, 4) === 'XSLM' ? raw.subarray(56) : raw;
        e.target = body.toString('utf8', 0, inode.size);
      }
    }
    return e;
  };

  return {
    type: 'xfs',
    ...(label ? { label } : {}),
    ...treeReader({
      root: () => entryOf(rootIno, '', '/'),
      children: (dir, where) => listDir(dir.inode, where),
      entryOf: (child, path) => entryOf(child.ino, child.name, path),
      publicEntry: ({ inode: _i, ...e }) => e,
      async open(file, where) {
        if (file.inode.format === 1)
          return Readable.from([Buffer.from(file.inode.fork.subarray(0, file.size))]);
        const exts = await extents(file.inode, where);
        return chunkedReadable(file.size, (pos, n) => readExtents(exts, pos, n));
      },
    }),
    close: async () => {},
  };
}
