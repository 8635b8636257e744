// FAT12/16/32 reader with VFAT long names (our own: the format is small, and the npm `fatfs`
// package has no FAT12 and a callback API over a writable volume). Read-only; the first FAT copy
// is loaded once (4 bytes per cluster at most), folders are read on demand.
import { Readable } from 'node:stream';
import type { BlockDevice } from './device';
import { type FileSystemReader, type FsEntry, FsError, pageOf, pathSegments } from './filesystem';

interface Geometry {
  type: 'fat12' | 'fat16' | 'fat32';
  bytesPerSector: number;
  clusterSize: number;
  fatOffset: number;
  fatBytes: number;
  rootOffset: number; // FAT12/16 fixed root folder
  rootBytes: number;
  rootCluster: number; // FAT32
  dataOffset: number;
  clusters: number;
  label?: string;
}

/** Decodes the boot sector; FsError CORRUPT with the field when it is not a FAT volume. */
export function decodeFatBootSector(b: Buffer, volumeSize: number): Geometry {
  const bad = (what: string) => new FsError('CORRUPT', `FAT boot sector: ${what}`);
  if (b.readUInt16LE(510) !== 0xaa55) throw bad('no 55 AA signature');
  const bps = b.readUInt16LE(11);
  const spc = b[13];
  const reserved = b.readUInt16LE(14);
  const fats = b[16];
  const rootEntries = b.readUInt16LE(17);
  const total = b.readUInt16LE(19) || b.readUInt32LE(32);
  const fatSize = b.readUInt16LE(22) || b.readUInt32LE(36);
  if (![512, 1024, 2048, 4096].includes(bps)) throw bad(`bytes per sector ${bps}`);
  if (spc === 0 || (spc & (spc - 1)) !== 0) throw bad(`sectors per cluster ${spc}`);
  if (reserved === 0 || fats === 0 || fatSize === 0 || total === 0)
    throw bad('empty reserved/FAT/size field');
  if (total * bps > volumeSize) throw bad(`volume of ${total * bps} bytes in a ${volumeSize}-byte partition`);
  const rootSectors = Math.ceil((rootEntries * 32) / bps);
  const firstData = reserved + fats * fatSize + rootSectors;
  if (firstData >= total) throw bad('no room for data after the FATs');
  const clusters = Math.floor((total - firstData) / spc);
  const type = clusters < 4085 ? 'fat12' : clusters < 65525 ? 'fat16' : 'fat32';
  const entryBits = type === 'fat12' ? 12 : type === 'fat16' ? 16 : 32;
  if (Math.ceil(((clusters + 2) * entryBits) / 8) > fatSize * bps) throw bad('FAT too small for the volume');
  const labelAt = type === 'fat32' ? 71 : 43;
  const label = b.toString('latin1', labelAt, labelAt + 11).trim();
  return {
    type,
    bytesPerSector: bps,
    clusterSize: spc * bps,
    fatOffset: reserved * bps,
    fatBytes: fatSize * bps,
    rootOffset: (reserved + fats * fatSize) * bps,
    rootBytes: rootSectors * bps,
    rootCluster: type === 'fat32' ? b.readUInt32LE(44) : 0,
    dataOffset: firstData * bps,
    clusters,
    ...(label && label !== 'NO NAME' ? { label } : {}),
  };
}

interface RawEntry extends FsEntry {
  cluster: number;
  shortName: string;
}

function fatDate(date: number, time: number): string | undefined {
  if (date === 0) return undefined;
  const d = new Date(
    Date.UTC(
      1980 + (date >> 9),
      ((date >> 5) & 15) - 1,
      date & 31,
      time >> 11,
      (time >> 5) & 63,
      (time & 31) * 2,
    ),
  );
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function shortNameChecksum(raw: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + raw[i]) & 0xff;
  return sum;
}

/** Entries of a folder's bytes (32-byte records), long names applied. */
export function decodeFatDirectory(data: Buffer): RawEntry[] {
  const out: RawEntry[] = [];
  let lfn: string[] = [];
  let lfnSum = -1;
  for (let o = 0; o + 32 <= data.length; o += 32) {
    const first = data[o];
    if (first === 0) break;
    if (first === 0xe5) {
      lfn = [];
      continue;
    }
    const attr = data[o + 11];
    if (attr === 0x0f) {
      const seq = first & 0x1f;
      if (first & 0x40) lfn = [];
      const chars = Buffer.concat([
        data.subarray(o + 1, o + 11),
        data.subarray(o + 14, o + 26),
        data.subarray(o + 28, o + 32),
      ]);
      let s = chars.toString('utf16le');
      const end = s.indexOf('\0');
      if (end >= 0) s = s.slice(0, end);
      lfn[seq - 1] = s;
      lfnSum = data[o + 13];
      continue;
    }
    const raw = data.subarray(o, o + 11);
    const long = lfn.length > 0 && lfnSum === shortNameChecksum(raw) ? lfn.join('') : undefined;
    lfn = [];
    if (attr & 0x08) continue; // volume label
    const nt = data[o + 12];
    let base = data.toString('latin1', o, o + 8).trimEnd();
    let ext = data.toString('latin1', o + 8, o + 11).trimEnd();
    if (base.charCodeAt(0) === 0x05) base = `\u00e5${base.slice(1)}`;
    if (nt & 0x08) base = base.toLowerCase();
    if (nt & 0x10) ext = ext.toLowerCase();
    const shortName = ext ? `${base}.${ext}` : base;
    if (shortName === '.' || shortName === '..') continue;
    const cluster = (data.readUInt16LE(o + 20) << 16) | data.readUInt16LE(o + 26);
    const dir = (attr & 0x10) !== 0;
    out.push({
      name: long ?? shortName,
      shortName,
      type: dir ? 'directory' : 'file',
      size: dir ? 0 : data.readUInt32LE(o + 28),
      mtime: fatDate(data.readUInt16LE(o + 24), data.readUInt16LE(o + 22)),
      mode: (dir ? 0o40755 : 0o100644) & ~(attr & 0x01 ? 0o222 : 0),
      id: `cluster:${cluster}`,
      cluster: cluster >>> 0,
    });
  }
  return out;
}

export async function openFatFs(dev: BlockDevice): Promise<FileSystemReader> {
  const g = decodeFatBootSector(await dev.read(0, 512), dev.size);
  if (g.fatOffset + g.fatBytes > dev.size)
    throw new FsError('CORRUPT', 'FAT is past the end of the partition');
  const fat = await dev.read(g.fatOffset, g.fatBytes);
  const maxCluster = g.clusters + 1;
  const next = (c: number): number => {
    if (g.type === 'fat12') {
      const v = fat.readUInt16LE(c + (c >> 1));
      const n = c & 1 ? v >> 4 : v & 0xfff;
      return n >= 0xff8 ? -1 : n;
    }
    if (g.type === 'fat16') {
      const n = fat.readUInt16LE(c * 2);
      return n >= 0xfff8 ? -1 : n;
    }
    const n = fat.readUInt32LE(c * 4) & 0x0fffffff;
    return n >= 0x0ffffff8 ? -1 : n;
  };
  /** The cluster chain from `start` (loops and out-of-range links are CORRUPT). */
  const chain = (start: number, what: string): number[] => {
    const out: number[] = [];
    for (let c = start; c !== -1; c = next(c)) {
      if (c < 2 || c > maxCluster)
        throw new FsError('CORRUPT', `${what}: cluster chain points at cluster ${c}, outside the volume`);
      if (out.length > g.clusters) throw new FsError('CORRUPT', `${what}: cluster chain loops`);
      out.push(c);
    }
    return out;
  };
  const clusterOffset = (c: number) => g.dataOffset + (c - 2) * g.clusterSize;
  const readChain = async (clusters: number[]): Promise<Buffer> => {
    const parts: Buffer[] = [];
    for (const c of clusters) parts.push(await dev.read(clusterOffset(c), g.clusterSize));
    return Buffer.concat(parts);
  };
  const readDir = async (cluster: number, what: string): Promise<RawEntry[]> => {
    if (cluster === 0 && g.type !== 'fat32')
      return decodeFatDirectory(await dev.read(g.rootOffset, g.rootBytes));
    const start = cluster === 0 ? g.rootCluster : cluster;
    const clusters = chain(start, what);
    if (clusters.length * g.clusterSize > 256 * 1024 * 1024)
      throw new FsError('CORRUPT', `${what}: folder larger than 256 MiB`);
    return decodeFatDirectory(await readChain(clusters));
  };
  const resolve = async (path: string): Promise<RawEntry> => {
    const segs = pathSegments(path);
    let cur: RawEntry = { name: '', shortName: '', type: 'directory', size: 0, cluster: 0, mode: 0o40755 };
    let at = '';
    for (const s of segs) {
      if (cur.type !== 'directory') throw new FsError('NOT_A_DIRECTORY', `${at || '/'}: not a folder`);
      const entries = await readDir(cur.cluster, at || '/');
      at += `/${s}`;
      const lower = s.toLowerCase();
      const found =
        entries.find((e) => e.name === s) ??
        entries.find((e) => e.name.toLowerCase() === lower || e.shortName.toLowerCase() === lower);
      if (!found) throw new FsError('NOT_FOUND', `${at}: no such file or folder`);
      cur = found;
    }
    return cur;
  };
  const publicEntry = ({ cluster: _c, shortName: _s, ...e }: RawEntry): FsEntry => e;
  return {
    type: g.type,
    ...(g.label ? { label: g.label } : {}),
    async list(dir, page) {
      const d = await resolve(dir);
      if (d.type !== 'directory')
        throw new FsError('NOT_A_DIRECTORY', `/${pathSegments(dir).join('/')}: not a folder`);
      const all = (await readDir(d.cluster, dir)).sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
      );
      return { entries: pageOf(all, page).map(publicEntry), total: all.length };
    },
    stat: async (path) => publicEntry(await resolve(path)),
    async openRead(path) {
      const f = await resolve(path);
      const where = `/${pathSegments(path).join('/')}`;
      if (f.type !== 'file') throw new FsError('NOT_A_FILE', `${where}: not a regular file`);
      const clusters = f.size === 0 ? [] : chain(f.cluster, where);
      if (clusters.length * g.clusterSize < f.size) {
        throw new FsError('CORRUPT', `${where}: ${f.size} bytes but only ${clusters.length} clusters`);
      }
      let i = 0;
      let left = f.size;
      return new Readable({
        async read() {
          try {
            if (left <= 0) return void this.push(null);
            // Contiguous clusters are read in one go (up to 4 MiB).
            let n = 1;
            while (
              i + n < clusters.length &&
              clusters[i + n] === clusters[i] + n &&
              n * g.clusterSize < 4 << 20
            )
              n++;
            const len = Math.min(left, n * g.clusterSize);
            const buf = await dev.read(clusterOffset(clusters[i]), len);
            i += n;
            left -= len;
            this.push(buf);
          } catch (e) {
            this.destroy(e as Error);
          }
        },
      });
    },
    close: async () => {},
  };
}
