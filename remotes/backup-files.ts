// Files inside a delta backup: disk → partition or logical volume → filesystem. Every failure names
// the backup's disk and volume ("disk 0 (root), partition 2: …").
import type { BackupRef } from '../core/restore-backup-id';
import type { BlockDevice } from '../formats/disk/device';
import { type FileSystemReader, FsError } from '../formats/disk/filesystem';
import { discoverVolumes, openFilesystem, type Volume } from '../formats/disk/volumes';
import { type BackupDisk, listBackupDisks, openBackupDisk } from './backup-disks';
import type { Remote } from './remote';

export class FileRestoreError extends Error {
  override readonly name = 'FileRestoreError';
}

export interface VolumeInfo {
  /** What `--partition` takes: "1", "5", "vg/lv"; "" for a filesystem on the whole disk. */
  id: string;
  kind: string;
  size: number;
  offset?: number;
  fsType?: string;
  label?: string;
  problem?: string;
}

export interface DiskInfo extends BackupDisk {
  size: number;
  scheme?: 'mbr' | 'gpt' | 'none';
  volumes: VolumeInfo[];
  /** The disk itself could not be read (damaged chain, damaged partition table). */
  problem?: string;
}

const diskLabel = (d: BackupDisk) => `disk ${d.index} (${d.name})`;
const volumeLabel = (v: { id: string }) =>
  v.id === '' ? 'whole disk' : v.id.includes('/') ? `logical volume ${v.id}` : `partition ${v.id}`;

const info = ({ device: _d, ...v }: Volume): VolumeInfo => v;

async function withDisk<T>(
  remote: Remote,
  disk: BackupDisk,
  fn: (dev: BlockDevice) => Promise<T>,
): Promise<T> {
  let dev: BlockDevice;
  try {
    dev = await openBackupDisk(remote, disk);
  } catch (e) {
    throw new FileRestoreError(`${diskLabel(disk)}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return await fn(dev);
  } finally {
    await dev.close();
  }
}

/** Every disk of the backup with its partitions / volumes and their filesystem types. */
export async function describeBackupDisks(remote: Remote, ref: BackupRef): Promise<DiskInfo[]> {
  const out: DiskInfo[] = [];
  for (const disk of await listBackupDisks(remote, ref)) {
    try {
      out.push(
        await withDisk(remote, disk, async (dev) => {
          const layout = await discoverVolumes(dev);
          return { ...disk, size: dev.size, scheme: layout.scheme, volumes: layout.volumes.map(info) };
        }),
      );
    } catch (e) {
      out.push({ ...disk, size: disk.virtualSize ?? 0, volumes: [], problem: (e as Error).message });
    }
  }
  return out;
}

export interface OpenedFiles {
  fs: FileSystemReader;
  /** "disk 0 (root), partition 1 (ext4)" */
  where: string;
  close(): Promise<void>;
}

/**
 * Opens the filesystem of one volume of one disk. `disk` may be omitted when the VM has one disk,
 * `partition` when the disk holds one readable filesystem.
 */
export async function openBackupFiles(
  remote: Remote,
  ref: BackupRef,
  sel: { disk?: number; partition?: string } = {},
): Promise<OpenedFiles> {
  const disks = await listBackupDisks(remote, ref);
  if (disks.length === 0) throw new FileRestoreError('the backup has no disks');
  if (sel.disk === undefined && disks.length > 1) {
    throw new FileRestoreError(
      `the VM has ${disks.length} disks: choose one with --disk (${disks.map((d) => `${d.index} = ${d.name}`).join(', ')})`,
    );
  }
  const disk = disks[sel.disk ?? 0];
  if (!disk) throw new FileRestoreError(`no disk ${sel.disk}: the backup has disks 0 to ${disks.length - 1}`);
  let dev: BlockDevice;
  try {
    dev = await openBackupDisk(remote, disk);
  } catch (e) {
    throw new FileRestoreError(`${diskLabel(disk)}: ${(e as Error).message}`, { cause: e });
  }
  try {
    let volumes: Volume[];
    try {
      volumes = (await discoverVolumes(dev)).volumes;
    } catch (e) {
      throw new FileRestoreError(`${diskLabel(disk)}: ${(e as Error).message}`, { cause: e });
    }
    let volume: Volume | undefined;
    if (sel.partition !== undefined) {
      volume = volumes.find((v) => v.id === sel.partition);
      if (!volume) {
        throw new FileRestoreError(
          `${diskLabel(disk)}: no partition or volume "${sel.partition}" (there are: ${volumes.map((v) => v.id || 'whole disk').join(', ') || 'none'})`,
        );
      }
    } else {
      const readable = volumes.filter(
        (v) => v.fsType && !v.problem && v.fsType !== 'lvm2-pv' && v.fsType !== 'swap',
      );
      if (readable.length !== 1) {
        throw new FileRestoreError(
          `${diskLabel(disk)}: ${readable.length === 0 ? 'no readable filesystem' : 'several filesystems'}: choose one with --partition (${volumes.map((v) => `${v.id || 'whole disk'}: ${v.fsType ?? v.problem}`).join(', ')})`,
        );
      }
      volume = readable[0];
    }
    const where = `${diskLabel(disk)}, ${volumeLabel(volume)}`;
    let fs: FileSystemReader;
    try {
      fs = await openFilesystem(volume);
    } catch (e) {
      throw new FileRestoreError(`${where}: ${(e as Error).message}`, { cause: e });
    }
    const fsWhere = `${where} (${fs.type})`;
    return {
      fs: namedErrors(fs, fsWhere),
      where: fsWhere,
      close: async () => {
        await fs.close().catch(() => {});
        await dev.close();
      },
    };
  } catch (e) {
    await dev.close();
    throw e;
  }
}

/** The same reader, its FsErrors prefixed with where the filesystem is. */
function namedErrors(fs: FileSystemReader, where: string): FileSystemReader {
  const wrap =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      try {
        return await fn(...a);
      } catch (e) {
        if (e instanceof FsError) throw new FsError(e.code, `${where}: ${e.message}`);
        throw e;
      }
    };
  return {
    type: fs.type,
    ...(fs.label ? { label: fs.label } : {}),
    list: wrap(fs.list.bind(fs)),
    stat: wrap(fs.stat.bind(fs)),
    openRead: wrap(fs.openRead.bind(fs)),
    close: () => fs.close(),
  };
}
