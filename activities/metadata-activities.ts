// Writes a backup's `<ts>.json` on every remote that holds its data: the last file of a backup, in
// Xen Orchestra's format (xo-backups.md §4.2) so XO lists and restores it too.
import { parseBackupTimestamp } from '../core/backup-time';
import { XO_KEYS } from '../core/xo-keys';
import type { BackupMetadata } from '../remotes/backup-metadata';
import { BackupRepository } from '../remotes/backup-repository';
import type { XapiClient } from '../xapi';
import type { BackupActivities, TargetOutcome, WriteMetadataRequest } from './contract';
import { withXapiFailures } from './failures';
import type { PoolRegistry } from './pools';
import type { RemoteRegistry } from './transfer-activities';
import { uuidOfRef, type VdiRecord, vmByUuid, vmDisks } from './xapi-records';

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function createMetadataActivities(
  pools: PoolRegistry,
  remotes: RemoteRegistry,
): Pick<BackupActivities, 'writeMetadata'> {
  return {
    writeMetadata: (req) =>
      withXapiFailures(`metadata of VM ${req.vmUuid}`, async () => {
        const xapi = await pools.client(req.poolId);
        const metadata = await buildMetadata(xapi, req);
        return Promise.all(
          req.remoteIds.map(async (remoteId): Promise<TargetOutcome> => {
            try {
              await new BackupRepository(remotes(remoteId)).writeMetadata(metadata);
              return { remoteId, ok: true };
            } catch (err) {
              return { remoteId, ok: false, error: message(err) };
            }
          }),
        );
      }),
  };
}

async function buildMetadata(xapi: XapiClient, req: WriteMetadataRequest): Promise<BackupMetadata> {
  const { vm } = await vmByUuid(xapi, req.vmUuid);
  const { vm: snapshot } = await vmByUuid(xapi, req.snapshotUuid);
  const common = {
    version: '2.0.0',
    jobId: req.jobId,
    scheduleId: req.scheduleId ?? 'manual',
    timestamp: parseBackupTimestamp(req.datetime) ?? Date.now(),
    vm,
    vmSnapshot: snapshot,
    size: req.size,
    tags: [] as string[],
  };
  if (req.mode === 'full') return { ...common, mode: 'full', xva: req.xvaPath ?? `./${req.datetime}.xva` };

  const byUuid = new Map(req.disks.map((d) => [d.snapshotVdiUuid, d]));
  const vbds: Record<string, unknown> = {};
  const vdis: Record<string, unknown> = {};
  const vhds: Record<string, string> = {};
  const isVhdDifferencing: Record<string, boolean> = {};
  const addVdi = async (vdiRef: string, vdi: VdiRecord) => {
    const disk = byUuid.get(vdi.uuid);
    if (!disk) return;
    vdis[vdiRef] = {
      ...vdi,
      other_config: { ...vdi.other_config, [XO_KEYS.vm]: req.vmUuid },
      $snapshot_of$uuid: await uuidOfRef(xapi, 'VDI', vdi.snapshot_of),
      $SR$uuid: await uuidOfRef(xapi, 'SR', vdi.SR),
    };
    vhds[vdiRef] = disk.path;
    isVhdDifferencing[`${vdiRef}.vhd`] = disk.differencing;
  };
  for (const d of await vmDisks(xapi, snapshot)) {
    vbds[d.vbdRef] = d.vbd;
    await addVdi(d.vdiRef, d.vdi);
  }
  if (snapshot.suspend_VDI && byUuid.size > Object.keys(vdis).length) {
    await addVdi(snapshot.suspend_VDI, await xapi.getRecord<VdiRecord>('VDI', snapshot.suspend_VDI));
  }
  const vifs: Record<string, unknown> = {};
  for (const vifRef of vm.VIFs ?? []) {
    const vif = await xapi.getRecord<Record<string, unknown>>('VIF', vifRef);
    const network = await xapi
      .getRecord<Record<string, unknown>>('network', String(vif.network))
      .catch(() => undefined);
    vifs[vifRef] = { ...vif, $network$uuid: network?.uuid, $network$name_label: network?.name_label };
  }
  return { ...common, mode: 'delta', vbds, vdis, vifs, vhds, isVhdDifferencing, vtpms: [] } as BackupMetadata;
}
