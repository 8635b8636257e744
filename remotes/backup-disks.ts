// The disks of one delta backup on a remote, in the VM's device order, each opened as a read-only
// block device over its whole VHD chain (formats/disk). The only place file-level restore learns
// where a backup's disks are.
import type { BackupRef } from '../core/restore-backup-id';
import type { BlockDevice } from '../formats/disk/device';
import type { RangedFile } from '../formats/disk/file-pool';
import { chainDevice, openLocalChainDevice } from '../formats/disk/vhd-chain-device';
import { DiskType, decodeFooter, decodeHeader, VhdError } from '../formats/vhd';
import { backupMetadataSchema, describeSchemaError } from './backup-metadata';
import { backupPaths, resolveInVmDir } from './backup-paths';
import { dirnameOf, isRemoteError, joinPath, normalizeRemotePath, type Remote, RemoteError } from './remote';

export interface BackupDisk {
  /** Position among the backup's disks, 0 first (VBD userdevice order). */
  index: number;
  /** VDI name in the backup's metadata. */
  name: string;
  /** Tip VHD, relative to the remote root. */
  vhdPath: string;
  virtualSize?: number;
}

type Rec = Record<string, unknown>;

/** The data disks of a delta backup (memory images left out), in device order. */
export async function listBackupDisks(remote: Remote, ref: BackupRef): Promise<BackupDisk[]> {
  const id = backupPaths(ref.vmUuid, ref.basename).metadata;
  let raw: unknown;
  try {
    raw = JSON.parse((await remote.readFile(id)).toString());
  } catch (e) {
    if (isRemoteError(e, 'ENOENT')) {
      throw new RemoteError(remote.id, id, 'ENOENT', `no backup ${ref.vmUuid}/${ref.basename}`);
    }
    throw e;
  }
  const parsed = backupMetadataSchema.safeParse(raw);
  if (!parsed.success)
    throw new RangeError(`backup ${id}: invalid metadata: ${describeSchemaError(parsed.error)}`);
  const meta = parsed.data;
  if (meta.mode !== 'delta') {
    throw new RangeError(
      `backup ${ref.vmUuid}/${ref.basename} is a full (XVA) backup: file restore reads delta backups`,
    );
  }
  const snapshot = (meta.vmSnapshot ?? {}) as Rec;
  const position = new Map<string, number>();
  for (const vbd of Object.values((meta.vbds ?? {}) as Record<string, Rec>)) {
    const n = Number(vbd.userdevice);
    if (typeof vbd.VDI === 'string' && Number.isFinite(n)) position.set(vbd.VDI, n);
  }
  const disks = Object.entries(meta.vhds)
    .filter(([key]) => {
      const vdi = (meta.vdis[key] ?? {}) as Rec;
      return vdi.type !== 'suspend' && snapshot.suspend_VDI !== key;
    })
    .map(([key, vhdRef], order) => {
      const vdi = (meta.vdis[key] ?? {}) as Rec;
      return {
        sort: position.get(key) ?? 1000 + order,
        name: String(vdi.name_label ?? key),
        vhdPath: resolveInVmDir(ref.vmUuid, vhdRef),
        ...(vdi.virtual_size !== undefined ? { virtualSize: Number(vdi.virtual_size) } : {}),
      };
    })
    .sort((a, b) => a.sort - b.sort);
  return disks.map(({ sort: _s, ...d }, index) => ({ index, ...d }));
}

/** One disk as a block device over its whole chain, however long. */
export async function openBackupDisk(
  remote: Remote,
  disk: BackupDisk,
  opts: { cacheBlocks?: number; maxOpenFiles?: number } = {},
): Promise<BlockDevice> {
  const local = remote.localPath(disk.vhdPath);
  if (local !== undefined) return openLocalChainDevice(local, opts);
  return openRemoteChainDevice(remote, disk.vhdPath, opts);
}

/** A file of a remote read by byte ranges (one ranged stream per read). */
export async function remoteRangedFile(remote: Remote, path: string): Promise<RangedFile> {
  const { size } = await remote.stat(path);
  return {
    name: `${remote.id}:${path}`,
    size,
    async read(offset, length) {
      const end = Math.min(size, offset + length);
      if (end <= offset) return Buffer.alloc(0);
      const chunks: Buffer[] = [];
      for await (const c of await remote.createReadStream(path, { start: offset, end: end - 1 }))
        chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    },
  };
}

/**
 * The chain ending at `tipPath` on a remote without local paths: parents found by the name in each
 * header (XO writes them next to their child), checked by UUID when the device opens.
 */
export async function openRemoteChainDevice(
  remote: Remote,
  tipPath: string,
  opts: { cacheBlocks?: number } = {},
): Promise<BlockDevice> {
  const files: RangedFile[] = [];
  const seen = new Set<string>();
  for (let path = tipPath; ; ) {
    if (seen.has(path))
      throw new VhdError('CHAIN_LOOP', `${path} is already in the chain (loop)`, files.at(-1)?.name);
    seen.add(path);
    const file = await remoteRangedFile(remote, path);
    files.push(file);
    const footer = decodeFooter(await file.read(file.size - 512, 512));
    if (footer.diskType !== DiskType.differencing) break;
    const header = decodeHeader(await file.read(footer.dataOffset!, 1024));
    const name = header.parentUnicodeName.replace(/\\/g, '/');
    if (!name) throw new VhdError('PARENT_MISSING', 'the header names no parent', file.name);
    path = normalizeRemotePath(remote.id, joinPath(dirnameOf(path), name.split('/').at(-1)!));
  }
  return chainDevice(files, opts);
}
