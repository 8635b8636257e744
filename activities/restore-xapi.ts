// The XAPI side of a restore on the target pool: the SR, the VDIs, the VM and its devices, start,
// the guest agent, and removal of whatever a failed or cancelled restore left. Everything created
// carries the restore's id in other_config, so a retried activity finds what an earlier attempt made
// and the cleanup finds everything, even what an attempt that died never reported.
import { heartbeat } from '@temporalio/activity';
import type { BackupRef } from '../core/restore-backup-id';
import { formatBackupId } from '../core/restore-backup-id';
import {
  RESTORE_DISK_KEY,
  RESTORE_KEY,
  restoredOtherConfig,
  restoredVmName,
  restoredVmTags,
} from '../core/restore-naming';
import {
  chooseNetwork,
  type NetworkChoice,
  plannedVbds,
  vbdCreateRecord,
  vifCreateRecord,
  vmCreateRecord,
} from '../core/restore-records';
import { XCPB_KEYS } from '../core/xo-keys';
import { backupMetadataSchema, type DeltaBackupMetadata } from '../remotes/backup-metadata';
import { backupPaths } from '../remotes/backup-paths';
import type { Remote } from '../remotes/remote';
import { type XapiClient, XapiError } from '../xapi';
import { permanent } from './failures';
import type { RestoreActivities, RestoredVdi, RestoredVm, RestoreTarget } from './restore-contract';
import { NULL_REF, type VdiRecord, type VmRecord, vmDisks } from './xapi-records';

type XRecord = Record<string, unknown>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function resolveSr(xapi: XapiClient, poolId: string, sr: string): Promise<RestoreTarget> {
  const all = await xapi.getAllRecords<{ uuid: string; name_label: string; content_type: string }>('SR');
  const matches = Object.values(all).filter((r) => (UUID.test(sr) ? r.uuid === sr : r.name_label === sr));
  if (matches.length === 0) {
    const known = Object.values(all)
      .filter((r) => r.content_type !== 'iso')
      .map((r) => `${r.name_label} (${r.uuid})`)
      .join(', ');
    throw permanent(
      `pool ${poolId} has no SR ${JSON.stringify(sr)} (SRs: ${known || 'none'})`,
      'SR_NOT_FOUND',
    );
  }
  if (matches.length > 1)
    throw permanent(
      `pool ${poolId} has ${matches.length} SRs named ${JSON.stringify(sr)}: give its uuid`,
      'SR_AMBIGUOUS',
    );
  return { poolId, srUuid: matches[0].uuid, srName: matches[0].name_label };
}

/** VDIs of this restore, by the disk they hold. */
async function restoreVdis(
  xapi: XapiClient,
  restoreId: string,
): Promise<Map<string, { ref: string; vdi: VdiRecord }>> {
  const out = new Map<string, { ref: string; vdi: VdiRecord }>();
  for (const [ref, vdi] of Object.entries(await xapi.getAllRecords<VdiRecord>('VDI'))) {
    if (vdi.other_config?.[RESTORE_KEY] === restoreId)
      out.set(vdi.other_config[RESTORE_DISK_KEY] ?? ref, { ref, vdi });
  }
  return out;
}

async function restoreVms(xapi: XapiClient, restoreId: string): Promise<[string, VmRecord][]> {
  return Object.entries(await xapi.getAllRecords<VmRecord>('VM')).filter(
    ([, vm]) => vm.other_config?.[RESTORE_KEY] === restoreId && !vm.is_a_snapshot,
  );
}

export async function readDeltaMetadata(remote: Remote, backup: BackupRef): Promise<DeltaBackupMetadata> {
  const raw = JSON.parse(
    (await remote.readFile(backupPaths(backup.vmUuid, backup.basename).metadata)).toString(),
  );
  const meta = backupMetadataSchema.parse(raw);
  if (meta.mode !== 'delta')
    throw permanent(`backup ${formatBackupId(backup)} is not a delta backup`, 'BACKUP_INVALID');
  return meta;
}

type XapiSide = Pick<
  RestoreActivities,
  | 'resolveRestoreSr'
  | 'createRestoreVdis'
  | 'createRestoredVm'
  | 'startRestoredVm'
  | 'waitForGuestAgent'
  | 'removeRestored'
>;

export function createRestoreXapiActivities(
  client: (poolId: string) => Promise<XapiClient>,
  remote: (remoteId: string) => Remote,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): XapiSide {
  return {
    async resolveRestoreSr({ poolId, sr }) {
      return resolveSr(await client(poolId), poolId, sr);
    },

    async createRestoreVdis({ target, disks, restoreId, purpose }) {
      const xapi = await client(target.poolId);
      const srRef = await xapi.call<string>('SR.get_by_uuid', target.srUuid);
      const existing = await restoreVdis(xapi, restoreId);
      const out: RestoredVdi[] = [];
      for (const d of disks) {
        let found = existing.get(d.key);
        if (!found) {
          const ref = await xapi.call<string>('VDI.create', {
            name_label: d.nameLabel,
            name_description: d.nameDescription,
            SR: srRef,
            virtual_size: String(d.virtualSize),
            type: d.suspend ? 'suspend' : 'user',
            sharable: false,
            read_only: false,
            other_config: {
              [RESTORE_KEY]: restoreId,
              [RESTORE_DISK_KEY]: d.key,
              [XCPB_KEYS.createdBy]: purpose,
            },
            xenstore_data: {},
            sm_config: {},
            tags: [],
          });
          found = { ref, vdi: await xapi.getRecord<VdiRecord>('VDI', ref) };
        }
        out.push({
          key: d.key,
          uuid: found.vdi.uuid,
          nameLabel: d.nameLabel,
          virtualSize: Number(found.vdi.virtual_size),
          suspend: d.suspend,
        });
      }
      return out;
    },

    async createRestoredVm({ poolId, backup, vdis, restoreId, purpose, newMacAddresses }) {
      const xapi = await client(poolId);
      const meta = await readDeltaMetadata(remote(backup.remoteId), backup);
      const vdiRefs = new Map<string, string>();
      for (const v of vdis) vdiRefs.set(v.key, await xapi.call<string>('VDI.get_by_uuid', v.uuid));
      const suspendVdi = vdis.find((v) => v.suspend);
      const snapshot = (meta.vmSnapshot ?? {}) as XRecord;
      const suspended = suspendVdi !== undefined && snapshot.power_state === 'Suspended';
      const source = meta.vm as XRecord;
      const name = restoredVmName(String(source.name_label ?? backup.vmUuid), backup.basename, purpose);
      const networks: string[] = [];
      let [found] = await restoreVms(xapi, restoreId);
      if (!found) {
        const vmRef = await xapi.call<string>(
          'VM.create',
          vmCreateRecord(suspended ? { ...source, ...pickMemory(snapshot) } : source, {
            name,
            tags: restoredVmTags(Array.isArray(source.tags) ? source.tags.map(String) : [], purpose),
            otherConfig: restoredOtherConfig(source.other_config as Record<string, string>, {
              restoreId,
              backupId: formatBackupId(backup),
              purpose,
            }),
            suspendVdiRef: suspended ? vdiRefs.get(suspendVdi.key) : undefined,
          }),
        );
        found = [vmRef, await xapi.getRecord<VmRecord>('VM', vmRef)];
      }
      const [vmRef] = found;
      // Devices: what is not there yet (a retried attempt may have made some).
      const vm = await xapi.getRecord<VmRecord>('VM', vmRef);
      const attached = new Set((await vmDisks(xapi, vm)).map((d) => d.vdi.uuid));
      const diskKeys = vdis.filter((v) => !v.suspend).map((v) => v.key);
      for (const plan of plannedVbds(meta.vbds as Record<string, XRecord> | undefined, diskKeys)) {
        const v = vdis.find((x) => x.key === plan.vdiKey)!;
        if (attached.has(v.uuid)) continue;
        await xapi.call('VBD.create', vbdCreateRecord(vmRef, vdiRefs.get(plan.vdiKey)!, plan));
      }
      if (vm.VIFs.length === 0) {
        const all = await xapi.getAllRecords<NetworkChoice>('network');
        const choices = Object.entries(all).map(([ref, n]) => ({
          ref,
          uuid: n.uuid,
          name_label: n.name_label,
        }));
        const vifs = Object.values((meta.vifs ?? {}) as Record<string, XRecord>).sort(
          (a, b) => Number(a.device) - Number(b.device),
        );
        for (const vif of vifs) {
          const choice = chooseNetwork(vif, choices);
          if (!choice) {
            networks.push(`VIF ${vif.device}: pool ${poolId} has no network, left out`);
            continue;
          }
          await xapi.call('VIF.create', vifCreateRecord(vmRef, choice.network.ref, vif, newMacAddresses));
          networks.push(`VIF ${vif.device}: ${choice.why} (${choice.network.name_label})`);
        }
      }
      const final = await xapi.getRecord<VmRecord>('VM', vmRef);
      return { vmUuid: final.uuid, vmName: final.name_label, powerState: final.power_state, vdis, networks };
    },

    async startRestoredVm({ poolId, vmUuid }) {
      const xapi = await client(poolId);
      const ref = await xapi.call<string>('VM.get_by_uuid', vmUuid);
      const state = await xapi.call<string>('VM.get_power_state', ref);
      if (state === 'Halted') await xapi.callAsync('VM.start', ref, false, false);
      else if (state === 'Suspended') await xapi.callAsync('VM.resume', ref, false, false);
      return xapi.call<string>('VM.get_power_state', ref);
    },

    async waitForGuestAgent({ poolId, vmUuid, timeoutMs }) {
      const xapi = await client(poolId);
      const ref = await xapi.call<string>('VM.get_by_uuid', vmUuid);
      const start = Date.now();
      for (;;) {
        const vm = await xapi.getRecord<VmRecord>('VM', ref);
        if (vm.power_state !== 'Running')
          throw permanent(
            `VM ${vm.name_label} is ${vm.power_state}, not Running: it stopped during the health check`,
            'HEALTH_CHECK_FAILED',
          );
        const gm = String(vm.guest_metrics ?? NULL_REF);
        if (gm !== NULL_REF) {
          const metrics = await xapi.getRecord<XRecord>('VM_guest_metrics', gm).catch(() => undefined);
          if (metrics && metrics.PV_drivers_detected !== false) return { waitedMs: Date.now() - start };
        }
        const waited = Date.now() - start;
        if (waited >= timeoutMs)
          throw permanent(
            `VM ${vm.name_label} started but its guest agent did not report (no VM_guest_metrics) within ${Math.round(timeoutMs / 1000)} s`,
            'HEALTH_CHECK_TIMEOUT',
          );
        heartbeat({ waitedMs: waited });
        await sleep(Math.min(1_000, timeoutMs - waited));
      }
    },

    async removeRestored({ poolId, restoreId }) {
      const xapi = await client(poolId);
      const removed = { vms: [] as string[], vdis: [] as string[] };
      const gone = (e: unknown) =>
        e instanceof XapiError && (e.code === 'HANDLE_INVALID' || e.code === 'UUID_INVALID');
      const vdiRefs = new Set<string>();
      for (const [ref, vm] of await restoreVms(xapi, restoreId)) {
        if (vm.power_state === 'Running' || vm.power_state === 'Paused')
          await xapi.callAsync('VM.hard_shutdown', ref).catch((e) => {
            if (!gone(e)) throw e;
          });
        for (const d of await vmDisks(xapi, vm)) vdiRefs.add(d.vdiRef);
        const suspend = await xapi.call<string>('VM.get_suspend_VDI', ref).catch(() => NULL_REF);
        if (suspend !== NULL_REF) vdiRefs.add(suspend);
        await xapi.callAsync('VM.destroy', ref).catch((e) => {
          if (!gone(e)) throw e;
        });
        removed.vms.push(vm.uuid);
      }
      for (const { ref } of (await restoreVdis(xapi, restoreId)).values()) vdiRefs.add(ref);
      for (const ref of vdiRefs) {
        const uuid = await xapi.call<string>('VDI.get_uuid', ref).catch(() => undefined);
        if (uuid === undefined) continue;
        await xapi.callAsync('VDI.destroy', ref).catch((e) => {
          if (!gone(e)) throw e;
        });
        removed.vdis.push(uuid);
      }
      return removed;
    },
  };
}

/** A checkpoint's memory settings are the snapshot's (the memory image was taken with them). */
function pickMemory(snapshot: XRecord): XRecord {
  const out: XRecord = {};
  for (const k of [
    'memory_static_max',
    'memory_dynamic_max',
    'memory_dynamic_min',
    'memory_static_min',
    'VCPUs_max',
    'VCPUs_at_startup',
    'platform',
  ])
    if (snapshot[k] !== undefined) out[k] = snapshot[k];
  return out;
}

export type { RestoredVm };
