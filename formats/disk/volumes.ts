// From a disk to the filesystems on it: partition table (or none), LVM logical volumes, then the
// filesystem type of each volume by its magic numbers. Every problem names the disk and volume.
import { type BlockDevice, sliceDevice } from './device';
import { openExtFs } from './ext';
import { openFatFs } from './fat';
import type { FileSystemReader } from './filesystem';
import { FsError } from './filesystem';
import { isLvmPhysicalVolume, readLvmVolumes } from './lvm';
import {
  looksLikeBootSector,
  type PartitionTable,
  PartitionTableError,
  readPartitionTable,
} from './partitions';

export type FsType =
  | 'ext2'
  | 'ext3'
  | 'ext4'
  | 'fat12'
  | 'fat16'
  | 'fat32'
  | 'ntfs'
  | 'xfs'
  | 'btrfs'
  | 'exfat'
  | 'swap'
  | 'luks'
  | 'lvm2-pv';

/** A filesystem type from the first 68 KiB of a volume, or undefined. */
export async function probeFilesystem(dev: BlockDevice): Promise<FsType | undefined> {
  const head = await dev.read(0, Math.min(dev.size, 0x11000));
  const at = (o: number, s: string) =>
    head.length >= o + s.length && head.toString('latin1', o, o + s.length) === s;
  if (head.length >= 1082 && head.readUInt16LE(1080) === 0xef53) {
    const compat = head.readUInt32LE(1024 + 0x5c);
    const incompat = head.readUInt32LE(1024 + 0x60);
    if (incompat & (0x40 | 0x80 | 0x200)) return 'ext4'; // extents, 64bit, flex_bg
    return compat & 0x4 ? 'ext3' : 'ext2'; // has_journal
  }
  if (at(0, 'XFSB')) return 'xfs';
  if (at(3, 'NTFS    ')) return 'ntfs';
  if (at(3, 'EXFAT   ')) return 'exfat';
  if (at(0x10040, '_BHRfS_M')) return 'btrfs';
  if (at(0, 'LUKS\xba\xbe')) return 'luks';
  if (head.length >= 512 && looksLikeBootSector(head.subarray(0, 512))) {
    const bps = head.readUInt16LE(11);
    const total = head.readUInt16LE(19) || head.readUInt32LE(32);
    const fatSize = head.readUInt16LE(22) || head.readUInt32LE(36);
    const rootSectors = Math.ceil((head.readUInt16LE(17) * 32) / (bps || 512));
    const data = total - head.readUInt16LE(14) - head[16] * fatSize - rootSectors;
    const clusters = Math.floor(data / (head[13] || 1));
    return clusters < 4085 ? 'fat12' : clusters < 65525 ? 'fat16' : 'fat32';
  }
  if (await isLvmPhysicalVolume(dev)) return 'lvm2-pv';
  if (dev.size >= 4096 && (await dev.read(4086, 10)).toString('latin1') === 'SWAPSPACE2') return 'swap';
  return undefined;
}

export interface Volume {
  /** "" for a filesystem on the whole disk, "1", "5" for partitions, "vg/lv" for logical volumes. */
  id: string;
  offset?: number;
  size: number;
  /** Partition type or LV segment type. */
  kind: string;
  fsType?: FsType;
  label?: string;
  /** Why its files cannot be read (unsupported, damaged…). */
  problem?: string;
  device: BlockDevice;
}

export interface DiskLayout {
  scheme: PartitionTable['scheme'];
  volumes: Volume[];
}

/** Every volume of a disk that may hold files (extended partitions and PVs are looked through). */
export async function discoverVolumes(disk: BlockDevice): Promise<DiskLayout> {
  let table: PartitionTable;
  try {
    table = await readPartitionTable(disk);
  } catch (e) {
    if (e instanceof PartitionTableError || e instanceof RangeError) throw new FsError('CORRUPT', e.message);
    throw e;
  }
  const candidates: Volume[] =
    table.scheme === 'none'
      ? [{ id: '', size: disk.size, kind: 'whole disk', device: disk }]
      : table.partitions.map((p) => ({
          id: String(p.number),
          offset: p.offset,
          size: p.size,
          kind: p.typeName ?? p.type,
          ...(p.name ? { label: p.name } : {}),
          device: sliceDevice(disk, p.offset, p.size),
        }));
  const out: Volume[] = [];
  const pvs: BlockDevice[] = [];
  for (const v of candidates) {
    const fsType = await probeFilesystem(v.device);
    if (fsType === 'lvm2-pv') pvs.push(v.device);
    out.push({ ...v, ...(fsType ? { fsType } : { problem: 'no known filesystem' }) });
  }
  if (pvs.length > 0) {
    for (const lv of await readLvmVolumes(pvs)) {
      if (lv.device) {
        const fsType = await probeFilesystem(lv.device);
        out.push({
          id: lv.id,
          size: lv.size,
          kind: lv.kind,
          device: lv.device,
          ...(fsType ? { fsType } : { problem: 'no known filesystem' }),
        });
      } else {
        out.push({
          id: lv.id,
          size: lv.size,
          kind: lv.kind,
          device: lv.device ?? sliceDevice(disk, 0, 0),
          problem: lv.problem,
        });
      }
    }
  }
  return { scheme: table.scheme, volumes: out };
}

/** Opens the filesystem of a volume; FsError UNSUPPORTED naming the type when there is no reader. */
export async function openFilesystem(volume: Volume): Promise<FileSystemReader> {
  if (volume.problem && !volume.fsType) throw new FsError('UNSUPPORTED', volume.problem);
  switch (volume.fsType) {
    case 'ext2':
    case 'ext3':
    case 'ext4':
      return openExtFs(volume.device, volume.fsType);
    case 'fat12':
    case 'fat16':
    case 'fat32':
      return openFatFs(volume.device);
    case 'lvm2-pv':
      throw new FsError('UNSUPPORTED', 'an LVM physical volume: choose one of its logical volumes (vg/lv)');
    default:
      throw new FsError(
        'UNSUPPORTED',
        volume.problem ?? `no reader for ${volume.fsType ?? 'this'} filesystem`,
      );
  }
}
