// NTFS reader (our own, from the on-disk format as documented by the Linux-NTFS project): MFT
// records with update-sequence fixups, attribute lists, resident and non-resident attributes
// (runlists, sparse runs), folders as $I30 B+trees ($INDEX_ROOT + $INDEX_ALLOCATION, walked from
// the root so only live entries are seen), symlinks and junctions from reparse points.
// Compressed and encrypted files are refused by name.
import { Readable } from 'node:stream';
import type { BlockDevice } from './device';
import type { FileSystemReader, FsEntry } from './filesystem';
import { FsError } from './filesystem';
import { chunkedReadable, treeReader } from './tree-reader';

const AT = {
  STANDARD_INFORMATION: 0x10,
  ATTRIBUTE_LIST: 0x20,
  FILE_NAME: 0x30,
  DATA: 0x80,
  INDEX_ROOT: 0x90,
  INDEX_ALLOCATION: 0xa0,
  REPARSE_POINT: 0xc0,
  END: 0xffffffff,
};
const ROOT = 5;
const corrupt = (m: string) => new FsError('CORRUPT', m);

interface Run {
  vcn: number;
  lcn: number | null; // null: sparse
  length: number;
}

interface Attr {
  type: number;
  name: string;
  flags: number;
  resident?: Buffer;
  runs?: Run[];
  startVcn?: number;
  dataSize?: number;
  initSize?: number;
}

export function decodeRunlist(b: Buffer, startVcn: number): Run[] {
  const runs: Run[] = [];
  let o = 0;
  let vcn = startVcn;
  let lcn = 0;
  while (o < b.length && b[o] !== 0) {
    const lenBytes = b[o] & 0x0f;
    const offBytes = b[o] >> 4;
    o++;
    if (lenBytes === 0 || lenBytes > 8 || offBytes > 8 || o + lenBytes + offBytes > b.length)
      throw corrupt('NTFS: bad runlist');
    const length = Number(b.readUIntLE(o, Math.min(lenBytes, 6)));
    o += lenBytes;
    if (offBytes === 0) runs.push({ vcn, lcn: null, length });
    else {
      lcn += offBytes > 6 ? Number(b.readBigInt64LE(o)) : b.readIntLE(o, offBytes);
      runs.push({ vcn, lcn, length });
    }
    o += offBytes;
    vcn += length;
  }
  return runs;
}

/** Applies the update sequence array of a FILE/INDX record in place; false when torn. */
function fixup(rec: Buffer, sector: number): boolean {
  const off = rec.readUInt16LE(4);
  const count = rec.readUInt16LE(6);
  if (off + count * 2 > rec.length || count === 0) return false;
  const usn = rec.readUInt16LE(off);
  for (let i = 1; i < count; i++) {
    const end = i * sector - 2;
    if (end + 2 > rec.length) break;
    if (rec.readUInt16LE(end) !== usn) return false;
    rec.writeUInt16LE(rec.readUInt16LE(off + i * 2), end);
  }
  return true;
}

function parseAttrs(rec: Buffer, where: string): Attr[] {
  const out: Attr[] = [];
  let o = rec.readUInt16LE(0x14);
  for (let guard = 0; o + 8 <= rec.length && guard < 512; guard++) {
    const type = rec.readUInt32LE(o);
    if (type === AT.END) break;
    const len = rec.readUInt32LE(o + 4);
    if (len < 16 || o + len > rec.length) throw corrupt(`${where}: bad attribute length`);
    const nameLen = rec[o + 9];
    const name = rec.toString(
      'utf16le',
      o + rec.readUInt16LE(o + 10),
      o + rec.readUInt16LE(o + 10) + nameLen * 2,
    );
    const flags = rec.readUInt16LE(o + 12);
    if (rec[o + 8] === 0) {
      const vlen = rec.readUInt32LE(o + 0x10);
      const voff = rec.readUInt16LE(o + 0x14);
      if (voff + vlen > len) throw corrupt(`${where}: resident attribute past its end`);
      out.push({ type, name, flags, resident: rec.subarray(o + voff, o + voff + vlen) });
    } else {
      const startVcn = Number(rec.readBigUInt64LE(o + 0x10));
      const rlOff = rec.readUInt16LE(o + 0x20);
      out.push({
        type,
        name,
        flags,
        startVcn,
        runs: decodeRunlist(rec.subarray(o + rlOff, o + len), startVcn),
        dataSize: Number(rec.readBigUInt64LE(o + 0x30)),
        initSize: Number(rec.readBigUInt64LE(o + 0x38)),
      });
    }
    o += len;
  }
  return out;
}

const filetime = (b: Buffer, o: number): string | undefined => {
  const t = Number(b.readBigUInt64LE(o) / 10000n) - 11644473600000;
  return t > 0 && t < 8.64e15 ? new Date(t).toISOString() : undefined;
};

export async function openNtfs(dev: BlockDevice): Promise<FileSystemReader> {
  const boot = await dev.read(0, 512);
  if (boot.toString('latin1', 3, 11) !== 'NTFS    ') throw corrupt('NTFS: no NTFS boot sector');
  const bps = boot.readUInt16LE(0x0b);
  const spcRaw = boot[0x0d];
  const spc = spcRaw > 0x80 ? 2 ** (256 - spcRaw) : spcRaw;
  const cluster = bps * spc;
  if (![512, 1024, 2048, 4096].includes(bps) || !cluster || cluster > 2 * 1024 * 1024)
    throw corrupt(`NTFS boot sector: cluster size ${bps}×${spcRaw}`);
  const sizeOf = (v: number) => (v >= 0x80 ? 2 ** (256 - v) : v * cluster);
  const recordSize = sizeOf(boot[0x40]);
  const indexSize = sizeOf(boot[0x44]);
  if (recordSize < 256 || recordSize > 65536 || indexSize < 256 || indexSize > 65536)
    throw corrupt('NTFS boot sector: bad record sizes');
  const mftLcn = Number(boot.readBigUInt64LE(0x30));
  if (mftLcn * cluster + recordSize > dev.size) throw corrupt('NTFS: $MFT is past the end of the volume');

  const readRuns = async (runs: Run[], offset: number, length: number, where: string): Promise<Buffer> => {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const vcn = Math.floor(pos / cluster);
      const run = runs.find((r) => vcn >= r.vcn && vcn < r.vcn + r.length);
      if (!run) throw corrupt(`${where}: no run for byte ${pos}`);
      const runEnd = (run.vcn + run.length) * cluster;
      const n = Math.min(length - done, runEnd - pos);
      if (run.lcn !== null) {
        const at = run.lcn * cluster + (pos - run.vcn * cluster);
        if (at < 0 || at + n > dev.size) throw corrupt(`${where}: run points outside the volume`);
        (await dev.read(at, n)).copy(out, done);
      }
      done += n;
    }
    return out;
  };

  // $MFT's own runlist, from record 0
  const rec0 = await dev.read(mftLcn * cluster, recordSize);
  if (rec0.toString('latin1', 0, 4) !== 'FILE' || !fixup(rec0, bps))
    throw corrupt('NTFS: $MFT record 0 is damaged');
  const mftData = parseAttrs(rec0, '$MFT').find((a) => a.type === AT.DATA && a.name === '');
  if (!mftData?.runs) throw corrupt('NTFS: $MFT has no data runs');
  const mftRuns = mftData.runs;
  const mftRecords = Math.floor((mftData.dataSize ?? 0) / recordSize);

  const cache = new Map<number, Attr[]>();
  const record = async (n: number, where: string): Promise<{ attrs: Attr[]; dir: boolean }> => {
    if (n >= mftRecords) throw corrupt(`${where}: MFT record ${n} is past the end of the MFT`);
    const rec = await readRuns(mftRuns, n * recordSize, recordSize, '$MFT');
    if (rec.toString('latin1', 0, 4) !== 'FILE' || !fixup(rec, bps))
      throw corrupt(`${where}: MFT record ${n} is damaged`);
    const flags = rec.readUInt16LE(0x16);
    if (!(flags & 1)) throw corrupt(`${where}: MFT record ${n} is not in use`);
    let attrs = cache.get(n);
    if (!attrs) {
      attrs = parseAttrs(rec, where);
      const list = attrs.find((a) => a.type === AT.ATTRIBUTE_LIST);
      if (list) {
        const body =
          list.resident ?? (await readRuns(list.runs!, 0, list.dataSize!, `${where}: attribute list`));
        const others = new Set<number>();
        for (let o = 0; o + 0x1a <= body.length; ) {
          const len = body.readUInt16LE(o + 4);
          if (len === 0) break;
          const ref = Number(body.readBigUInt64LE(o + 0x10) & 0xffffffffffffn);
          if (ref !== n) others.add(ref);
          o += len;
        }
        for (const ref of others) {
          const ext = await readRuns(mftRuns, ref * recordSize, recordSize, '$MFT');
          if (ext.toString('latin1', 0, 4) !== 'FILE' || !fixup(ext, bps))
            throw corrupt(`${where}: MFT record ${ref} is damaged`);
          attrs.push(...parseAttrs(ext, where));
        }
      }
      if (cache.size > 4096) cache.clear();
      cache.set(n, attrs);
    }
    return { attrs, dir: (flags & 2) !== 0 };
  };

  /** The runs of a non-resident attribute, merged over its extents (attribute lists). */
  const attrRuns = (attrs: Attr[], type: number, name: string) => {
    const parts = attrs
      .filter((a) => a.type === type && a.name === name)
      .sort((a, b) => (a.startVcn ?? 0) - (b.startVcn ?? 0));
    if (parts.length === 0) return undefined;
    if (parts[0].resident)
      return { resident: parts[0].resident, flags: parts[0].flags, size: parts[0].resident.length };
    return {
      runs: parts.flatMap((p) => p.runs!),
      flags: parts[0].flags,
      size: parts[0].dataSize!,
      init: parts[0].initSize!,
    };
  };

  interface Child {
    ref: number;
    name: string;
  }
  const listDir = async (n: number, where: string): Promise<Child[]> => {
    const { attrs } = await record(n, where);
    const root = attrs.find((a) => a.type === AT.INDEX_ROOT && a.name === '$I30');
    if (!root?.resident) throw new FsError('NOT_A_DIRECTORY', `${where}: not a folder`);
    const alloc = attrRuns(attrs, AT.INDEX_ALLOCATION, '$I30');
    const out: Child[] = [];
    const seenBlocks = new Set<number>();
    const entries = async (buf: Buffer, start: number, end: number, depth: number): Promise<void> => {
      if (depth > 64) throw corrupt(`${where}: folder index nested too deep`);
      for (let o = start; o + 16 <= end; ) {
        const len = buf.readUInt16LE(o + 8);
        const keyLen = buf.readUInt16LE(o + 10);
        const flags = buf.readUInt16LE(o + 12);
        if (len < 16 || o + len > end) throw corrupt(`${where}: bad folder index entry`);
        if (flags & 1) {
          const vcn = Number(buf.readBigUInt64LE(o + len - 8));
          if (!alloc?.runs) throw corrupt(`${where}: index points at a missing allocation`);
          if (seenBlocks.has(vcn)) throw corrupt(`${where}: folder index loops (looping directory)`);
          seenBlocks.add(vcn);
          const block = await readRuns(
            alloc.runs,
            vcn * cluster < indexSize ? vcn * indexSize : vcn * cluster,
            indexSize,
            where,
          );
          if (block.toString('latin1', 0, 4) !== 'INDX' || !fixup(block, bps))
            throw corrupt(`${where}: damaged index block at VCN ${vcn}`);
          const h = 0x18;
          await entries(block, h + block.readUInt32LE(h), h + block.readUInt32LE(h + 4), depth + 1);
        }
        if (flags & 2) break;
        if (keyLen >= 0x42) {
          const key = buf.subarray(o + 16, o + 16 + keyLen);
          const namespace = key[0x41];
          const name = key.toString('utf16le', 0x42, 0x42 + key[0x40] * 2);
          const ref = Number(buf.readBigUInt64LE(o) & 0xffffffffffffn);
          if (namespace !== 2 && ref !== n && !(n === ROOT && ref < 24 && name.startsWith('$')))
            out.push({ ref, name });
        }
        o += len;
      }
    };
    const h = 0x10;
    await entries(root.resident, h + root.resident.readUInt32LE(h), h + root.resident.readUInt32LE(h + 4), 0);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  };

  const entryOf = async (ref: number, name: string, where: string): Promise<FsEntry & { ref: number }> => {
    const { attrs, dir } = await record(ref, where);
    const si = attrs.find((a) => a.type === AT.STANDARD_INFORMATION)?.resident;
    const rp = attrs.find((a) => a.type === AT.REPARSE_POINT)?.resident;
    const base = {
      name,
      ref,
      id: `mft:${ref}`,
      ...(si && si.length >= 16 ? { mtime: filetime(si, 8) } : {}),
    };
    if (rp && rp.length >= 8) {
      const tag = rp.readUInt32LE(0);
      if (tag === 0xa000000c || tag === 0xa0000003) {
        const d = 8;
        const hdr = tag === 0xa000000c ? 12 : 8; // symlinks have a flags field before the names
        const printOff = rp.readUInt16LE(d + 4);
        const printLen = rp.readUInt16LE(d + 6);
        const subOff = rp.readUInt16LE(d);
        const subLen = rp.readUInt16LE(d + 2);
        const at = d + hdr;
        let target = rp.toString('utf16le', at + printOff, at + printOff + printLen);
        if (!target)
          target = rp.toString('utf16le', at + subOff, at + subOff + subLen).replace(/^\\\?\?\\/, '');
        return {
          ...base,
          type: 'symlink',
          size: Buffer.byteLength(target),
          target: target.replace(/\\/g, '/'),
        };
      }
      // ntfs-3g stores other reparse data (e.g. its own symlinks on old versions): shown as "other"
      if (!dir) return { ...base, type: 'other', size: 0 };
    }
    if (dir) return { ...base, type: 'directory', size: 0, mode: 0o40755 };
    const data = attrRuns(attrs, AT.DATA, '');
    // Interix symlinks (what ntfs-3g writes by default): a system file "IntxLNK\1" + UTF-16 target
    const system = si && si.length >= 0x24 && (si.readUInt32LE(0x20) & 0x04) !== 0;
    if (system && data && data.size > 8 && data.size <= 4096) {
      const body = data.resident ?? (await readRuns(data.runs!, 0, data.size, where));
      if (body.toString('latin1', 0, 8) === 'IntxLNK\x01') {
        const target = body.toString('utf16le', 8);
        return { ...base, type: 'symlink', size: Buffer.byteLength(target), target };
      }
    }
    return { ...base, type: 'file', size: data?.size ?? 0, mode: 0o100644 };
  };

  const volName = (await record(3, '$Volume').catch(() => undefined))?.attrs.find(
    (a) => a.type === 0x60,
  )?.resident;

  return {
    type: 'ntfs',
    ...(volName?.length ? { label: volName.toString('utf16le') } : {}),
    ...treeReader({
      root: async (): Promise<FsEntry & { ref: number }> => ({
        name: '',
        ref: ROOT,
        type: 'directory',
        size: 0,
        mode: 0o40755,
        id: `mft:${ROOT}`,
      }),
      children: (dir, where) => listDir(dir.ref, where),
      entryOf: (child, path) => entryOf(child.ref, child.name, path),
      // Windows names are case-insensitive: an exact match first, else one of another case.
      find: (children, name) =>
        children.find((c) => c.name === name) ??
        children.find((c) => c.name.toLowerCase() === name.toLowerCase()),
      publicEntry: ({ ref: _r, ...e }) => e,
      async open(file, where) {
        const data = attrRuns((await record(file.ref, where)).attrs, AT.DATA, '');
        if (!data) return Readable.from([]);
        if (data.flags & 0x0001)
          throw new FsError('UNSUPPORTED', `${where}: NTFS-compressed files are not supported`);
        if (data.flags & 0x4000)
          throw new FsError('UNSUPPORTED', `${where}: encrypted (EFS) files are not supported`);
        if (data.resident) return Readable.from([Buffer.from(data.resident)]);
        const runs = data.runs!;
        const size = data.size;
        const init = Math.min(data.init ?? size, size);
        return chunkedReadable(size, async (pos, n) => {
          // bytes past the initialized size read as zeros
          const real = Math.max(0, Math.min(n, init - pos));
          const buf = real > 0 ? await readRuns(runs, pos, real, where) : Buffer.alloc(0);
          return real === n ? buf : Buffer.concat([buf, Buffer.alloc(n - real)]);
        });
      },
    }),
    close: async () => {},
  };
}
