// The disks of one delta backup on a remote, in the VM's device order, each opened as a read-only
// block device over its whole VHD chain (formats/disk). The only place file-level restore learns
// where a backup's disks are.
import type { BackupRef } from '../core/restore-backup-id';
import { type BlockDevice, cachedDevice } from '../formats/disk/device';
import type { RangedFile } from '../formats/disk/file-pool';
import { chainDevice, chainPathsIn } from '../formats/disk/vhd-chain-device';
import { blockCount, makeChain, VHD_BLOCK_SIZE, type VhdDisk } from '../formats/vhd';
import { backupMetadataSchema, describeSchemaError } from './backup-metadata';
import { backupPaths, resolveInVmDir } from './backup-paths';
import { isRemoteError, type Remote, RemoteError } from './remote';
import { isAlias } from './vhd-directory';
import { remoteRangedFile, remoteVhdStore } from './vhd-store';

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

/**
 * One disk as a block device over its whole chain, however long, read through ranged reads of the
 * remote (no file handle is held: each read is one ranged read). A chain of VHD files is read by
 * formats/disk's chain device (only allocated BAT entries in memory); one with VHD directories
 * (remotes that cannot rewrite in place) through formats/vhd's chain of opened disks.
 */
export async function openBackupDisk(
  remote: Remote,
  disk: BackupDisk,
  opts: { cacheBlocks?: number } = {},
): Promise<BlockDevice> {
  const store = remoteVhdStore(remote);
  const paths = await chainPathsIn(store, disk.vhdPath);
  if (!paths.some(isAlias)) {
    const files: RangedFile[] = [];
    for (const p of paths) files.push(await remoteRangedFile(remote, p));
    return chainDevice(files, opts);
  }
  const disks: VhdDisk[] = [];
  try {
    for (const p of paths) disks.push(await store.open(p));
  } catch (error) {
    await Promise.all(disks.map((d) => d.close().catch(() => {})));
    throw error;
  }
  const chain = makeChain(disks);
  const count = blockCount(chain.size);
  return cachedDevice(
    {
      size: chain.size,
      blockSize: VHD_BLOCK_SIZE,
      readBlock: (i) => {
        if (i < 0 || i >= count) throw new RangeError(`block ${i} outside the disk`);
        return chain.readBlock(i);
      },
      close: () => chain.close(),
    },
    opts.cacheBlocks ?? 16,
  );
}
