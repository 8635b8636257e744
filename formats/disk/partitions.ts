// Partition tables: MBR (primary, extended, logical through the EBR chain) and GPT (primary header,
// CRC-checked). Numbered as Linux numbers them: MBR primaries 1–4, logicals from 5 in chain order;
// GPT by entry index + 1. Our own code: balena's `gpt` drops empty entries (so numbers shift) and
// `partitioninfo` follows EBR chains without a loop guard; both are small formats.
import { crc32 } from 'node:zlib';
import type { BlockDevice } from './device';

export const SECTOR = 512;

export interface Partition {
  /** Linux number (sdaN). */
  number: number;
  offset: number;
  size: number;
  /** MBR: "0x83"; GPT: the type GUID. */
  type: string;
  /** What the type means when known ("Linux", "EFI System", "Linux LVM"…). */
  typeName?: string;
  /** GPT partition name. */
  name?: string;
}

export interface PartitionTable {
  scheme: 'mbr' | 'gpt' | 'none';
  partitions: Partition[];
}

export class PartitionTableError extends Error {
  override readonly name = 'PartitionTableError';
}

const MBR_TYPES: Record<number, string> = {
  1: 'FAT12',
  4: 'FAT16',
  6: 'FAT16',
  7: 'NTFS/exFAT',
  11: 'FAT32',
  12: 'FAT32 (LBA)',
  14: 'FAT16 (LBA)',
  130: 'Linux swap',
  131: 'Linux',
  142: 'Linux LVM',
  239: 'EFI System',
  253: 'Linux RAID',
};
const EXTENDED = new Set([0x05, 0x0f, 0x85]);

const GPT_TYPES: Record<string, string> = {
  'c12a7328-f81f-11d2-ba4b-00a0c93ec93b': 'EFI System',
  '0fc63daf-8483-4772-8e79-3d69d8477de4': 'Linux',
  'e6d6d379-f507-44c2-a23c-238f2a3df928': 'Linux LVM',
  '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f': 'Linux swap',
  'a19d880f-05fc-4d3b-a006-743f0f84911e': 'Linux RAID',
  'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7': 'Microsoft basic data',
  'e3c9e316-0b5c-4db8-817d-f92df00215ae': 'Microsoft reserved',
  'de94bba4-06d1-4d40-a16a-bfd50179d6ac': 'Windows recovery',
  '21686148-6449-6e6f-744e-656564454649': 'BIOS boot',
  '4f68bce3-e8cd-4db1-96e7-fbcaf984b709': 'Linux root (x86-64)',
};

export function guidToString(b: Buffer, o: number): string {
  const h = (start: number, len: number, le: boolean) => {
    const bytes = [...b.subarray(o + start, o + start + len)];
    if (le) bytes.reverse();
    return bytes.map((x) => x.toString(16).padStart(2, '0')).join('');
  };
  return `${h(0, 4, true)}-${h(4, 2, true)}-${h(6, 2, true)}-${h(8, 2, false)}-${h(10, 6, false)}`;
}

interface MbrEntry {
  type: number;
  start: number; // sectors
  count: number;
}

function mbrEntries(sector: Buffer): MbrEntry[] | undefined {
  if (sector.readUInt16LE(510) !== 0xaa55) return undefined;
  const out: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    out.push({ type: sector[o + 4], start: sector.readUInt32LE(o + 8), count: sector.readUInt32LE(o + 12) });
  }
  return out;
}

/**
 * A boot sector of a filesystem (FAT, NTFS, exFAT) also ends with 55 AA: such a disk has no
 * partition table, it is the filesystem itself.
 */
export function looksLikeBootSector(sector: Buffer): boolean {
  const oem = sector.toString('latin1', 3, 11);
  if (oem === 'NTFS    ' || oem === 'EXFAT   ') return true;
  const jump = sector[0] === 0xeb || sector[0] === 0xe9;
  const fat16 =
    sector.toString('latin1', 54, 59) === 'FAT12' || sector.toString('latin1', 54, 59) === 'FAT16';
  const fat32 = sector.toString('latin1', 82, 87) === 'FAT32';
  return jump && (fat16 || fat32 || sector.toString('latin1', 54, 57) === 'FAT');
}

/** Reads the partition table of `dev`; `none` when the disk holds no table (a bare filesystem). */
export async function readPartitionTable(dev: BlockDevice): Promise<PartitionTable> {
  if (dev.size < SECTOR) return { scheme: 'none', partitions: [] };
  const mbr = await dev.read(0, SECTOR);
  const entries = mbrEntries(mbr);
  if (!entries || looksLikeBootSector(mbr)) return { scheme: 'none', partitions: [] };
  const used = entries.filter((e) => e.type !== 0);
  if (used.length === 0) return { scheme: 'none', partitions: [] };
  if (used.some((e) => e.type === 0xee)) return readGpt(dev);
  const parts: Partition[] = [];
  const totalSectors = Math.floor(dev.size / SECTOR);
  const check = (p: Partition, where: string) => {
    if (p.offset + p.size > dev.size) {
      throw new PartitionTableError(
        `${where} partition ${p.number} ends at byte ${p.offset + p.size}, past the end of the ${dev.size}-byte disk (truncated or damaged partition table)`,
      );
    }
  };
  let extended: MbrEntry | undefined;
  entries.forEach((e, i) => {
    if (e.type === 0) return;
    if (EXTENDED.has(e.type)) {
      if (extended) throw new PartitionTableError('MBR: more than one extended partition');
      extended = e;
      if (e.start + e.count > totalSectors) {
        throw new PartitionTableError(
          `MBR extended partition ${i + 1} ends at byte ${(e.start + e.count) * SECTOR}, past the end of the ${dev.size}-byte disk (truncated or damaged partition table)`,
        );
      }
      return;
    }
    const p: Partition = {
      number: i + 1,
      offset: e.start * SECTOR,
      size: e.count * SECTOR,
      type: `0x${e.type.toString(16).padStart(2, '0')}`,
      typeName: MBR_TYPES[e.type],
    };
    check(p, 'MBR');
    parts.push(p);
  });
  if (extended) {
    // The EBR chain: each EBR holds one logical partition (relative to this EBR) and a link to the
    // next EBR (relative to the extended partition's start).
    const base = extended.start;
    const seen = new Set<number>();
    let ebr = base;
    for (let n = 5; ; n++) {
      if (seen.has(ebr))
        throw new PartitionTableError(`MBR: the chain of logical partitions loops at sector ${ebr}`);
      if (seen.size >= 256) throw new PartitionTableError('MBR: more than 256 logical partitions');
      seen.add(ebr);
      if (ebr < base || ebr >= base + extended.count) {
        throw new PartitionTableError(
          `MBR: logical partition ${n}'s table is outside the extended partition`,
        );
      }
      const es = mbrEntries(await dev.read(ebr * SECTOR, SECTOR));
      if (!es)
        throw new PartitionTableError(
          `MBR: logical partition ${n}'s table at sector ${ebr} has no signature`,
        );
      const [first, link] = es;
      if (first.type !== 0) {
        const p: Partition = {
          number: n,
          offset: (ebr + first.start) * SECTOR,
          size: first.count * SECTOR,
          type: `0x${first.type.toString(16).padStart(2, '0')}`,
          typeName: MBR_TYPES[first.type],
        };
        check(p, 'MBR logical');
        parts.push(p);
      }
      if (link.type === 0 || !EXTENDED.has(link.type)) break;
      ebr = base + link.start;
    }
  }
  checkOverlaps(parts, 'MBR');
  return { scheme: 'mbr', partitions: parts };
}

function checkOverlaps(parts: Partition[], scheme: string): void {
  const sorted = [...parts].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1];
    const b = sorted[i];
    if (b.offset < a.offset + a.size) {
      throw new PartitionTableError(`${scheme}: partitions ${a.number} and ${b.number} overlap`);
    }
  }
}

async function readGpt(dev: BlockDevice): Promise<PartitionTable> {
  if (dev.size < 2 * SECTOR) throw new PartitionTableError('GPT: the disk is too small for a GPT header');
  const h = await dev.read(SECTOR, SECTOR);
  if (h.toString('latin1', 0, 8) !== 'EFI PART') {
    throw new PartitionTableError('GPT: protective MBR but no "EFI PART" header at sector 1');
  }
  const headerSize = h.readUInt32LE(12);
  if (headerSize < 92 || headerSize > SECTOR) throw new PartitionTableError(`GPT: header size ${headerSize}`);
  const copy = Buffer.from(h.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== h.readUInt32LE(16)) throw new PartitionTableError('GPT: header checksum mismatch');
  const firstUsable = Number(h.readBigUInt64LE(40));
  const lastUsable = Number(h.readBigUInt64LE(48));
  const tableLba = Number(h.readBigUInt64LE(72));
  const count = h.readUInt32LE(80);
  const entrySize = h.readUInt32LE(84);
  if (entrySize < 128 || entrySize > 4096 || count > 4096) {
    throw new PartitionTableError(`GPT: implausible table (${count} entries of ${entrySize} bytes)`);
  }
  const tableBytes = count * entrySize;
  if (tableLba * SECTOR + tableBytes > dev.size) {
    throw new PartitionTableError('GPT: the partition entry array is past the end of the disk (truncated?)');
  }
  const table = await dev.read(tableLba * SECTOR, tableBytes);
  if (crc32(table) !== h.readUInt32LE(88))
    throw new PartitionTableError('GPT: partition entry array checksum mismatch');
  const parts: Partition[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * entrySize;
    const type = guidToString(table, o);
    if (type === '00000000-0000-0000-0000-000000000000') continue;
    const first = Number(table.readBigUInt64LE(o + 32));
    const last = Number(table.readBigUInt64LE(o + 40));
    const name = table.toString('utf16le', o + 56, o + 128).replace(/\0.*$/s, '');
    if (last < first || first < firstUsable || last > lastUsable || (last + 1) * SECTOR > dev.size) {
      throw new PartitionTableError(
        `GPT: partition ${i + 1} (sectors ${first}–${last}) is outside the usable area ${firstUsable}–${lastUsable}${(last + 1) * SECTOR > dev.size ? ' (past the end of the disk)' : ''}`,
      );
    }
    parts.push({
      number: i + 1,
      offset: first * SECTOR,
      size: (last - first + 1) * SECTOR,
      type,
      typeName: GPT_TYPES[type],
      ...(name ? { name } : {}),
    });
  }
  checkOverlaps(parts, 'GPT');
  return { scheme: 'gpt', partitions: parts };
}
