// Reads a backup from its remote and checks it end to end before anything is created: the metadata,
// the XVA, or every disk's whole VHD chain (each file opened and checked). A bad file fails here,
// with its path, and non-retryably: retrying cannot fix a corrupted backup.

import { type BackupRef, formatBackupId } from '../core/restore-backup-id';
import { blockCount, VHD_BLOCK_SIZE, VhdError } from '../formats/vhd';
import { backupMetadataSchema, describeSchemaError } from '../remotes/backup-metadata';
import { backupPaths, resolveInVmDir } from '../remotes/backup-paths';
import { BackupRepository } from '../remotes/backup-repository';
import { isRemoteError, type Remote } from '../remotes/remote';
import { permanent } from './failures';
import type { BackupDiskPlan, BackupPlan } from './restore-contract';

type XRecord = Record<string, unknown>;

export async function inspectBackup(remote: Remote, ref: BackupRef): Promise<BackupPlan> {
  const backupId = formatBackupId(ref);
  const repository = BackupRepository.readOnly(remote);
  const paths = backupPaths(ref.vmUuid, ref.basename);
  let raw: unknown;
  try {
    raw = JSON.parse((await remote.readFile(paths.metadata)).toString());
  } catch (err) {
    if (isRemoteError(err, 'ENOENT'))
      throw permanent(
        `backup ${backupId}: no metadata ${paths.metadata} on remote ${remote.id}`,
        'BACKUP_NOT_FOUND',
      );
    if (err instanceof SyntaxError)
      throw permanent(`backup ${backupId}: ${paths.metadata} is not JSON (${err.message})`, 'BACKUP_INVALID');
    throw err;
  }
  const parsed = backupMetadataSchema.safeParse(raw);
  if (!parsed.success)
    throw permanent(
      `backup ${backupId}: ${paths.metadata}: ${describeSchemaError(parsed.error)}`,
      'BACKUP_INVALID',
    );
  const meta = parsed.data;
  const vm = meta.vm as XRecord;
  const common = {
    ...ref,
    backupId,
    mode: meta.mode,
    jobId: meta.jobId,
    timestamp: meta.timestamp,
    vmName: String(vm.name_label ?? ref.vmUuid),
    vmTags: Array.isArray(vm.tags) ? vm.tags.map(String) : [],
  };
  const missing = (path: string) =>
    permanent(`backup ${backupId}: ${path} is missing on remote ${remote.id}`, 'BACKUP_BROKEN');

  if (meta.mode === 'full') {
    const xvaPath = resolveInVmDir(ref.vmUuid, meta.xva);
    const stat = await remote.stat(xvaPath).catch((err) => {
      throw isRemoteError(err, 'ENOENT') ? missing(xvaPath) : err;
    });
    return { ...common, mode: 'full', restoreBytes: stat.size, xvaPath, disks: [], suspended: false };
  }

  const snapshot = (meta.vmSnapshot ?? {}) as XRecord;
  const disks: BackupDiskPlan[] = [];
  for (const [key, vhdRef] of Object.entries(meta.vhds)) {
    const vdi = (meta.vdis[key] ?? {}) as XRecord;
    const vhdPath = resolveInVmDir(ref.vmUuid, vhdRef);
    if (!(await remote.exists(vhdPath))) throw missing(vhdPath);
    try {
      const chain = await repository.openChain(vhdPath);
      try {
        await repository.checkChain(chain);
        const blocks = chain.blocks().length;
        disks.push({
          key,
          vhdPath,
          nameLabel: String(vdi.name_label ?? key),
          nameDescription: String(vdi.name_description ?? ''),
          virtualSize: Math.max(chain.size, Number(vdi.virtual_size ?? 0)),
          chainLength: chain.files.length,
          dataBytes: Math.min(blocks, blockCount(chain.size)) * VHD_BLOCK_SIZE,
          suspend:
            vdi.type === 'suspend' || (snapshot.suspend_VDI !== undefined && snapshot.suspend_VDI === key),
        });
      } finally {
        await chain.close();
      }
    } catch (err) {
      if (err instanceof VhdError)
        throw permanent(
          `backup ${backupId}: disk ${JSON.stringify(vdi.name_label ?? key)}: ${err.file ?? vhdPath}: ${err.problem}`,
          'VHD_INVALID',
        );
      throw err;
    }
  }
  if (disks.filter((d) => !d.suspend).length === 0)
    throw permanent(`backup ${backupId}: delta backup without disks`, 'BACKUP_INVALID');
  return {
    ...common,
    mode: 'delta',
    restoreBytes: disks.reduce((n, d) => n + d.dataBytes, 0),
    disks,
    suspended: disks.some((d) => d.suspend) && snapshot.power_state === 'Suspended',
  };
}
