// The target pool's side of replication (xo-backups.md §6.1): DR marks the VM an XVA import made,
// CR prepares VDIs (clones of the previous replica's, or new ones), creates the replica VM on them
// and snapshots it. Everything a transfer creates carries the replica's owner keys, so what an
// interrupted one left is found and destroyed before the next transfer (never a half replica).
import { Context } from '@temporalio/activity';
import {
  completeReplicaOtherConfig,
  cpuMismatch,
  IMPORT_SLOT_SIGNAL,
  isCompleteReplica,
  isLeftoverReplica,
  isOrphanReplicaVdi,
  REPLICA_IMPORT_KEY,
  REPLICA_PURPOSE,
  type ReplicaOwner,
  replicaImportTaskName,
  replicaImportTaskPrefix,
  replicaName,
  replicaOtherConfig,
  replicasBeyondRetention,
  replicaTags,
  START_BLOCKED_REASON,
} from '../core/replica';
import { RESTORE_KEY } from '../core/restore-naming';
import { NULL_REF, vbdCreateRecord, vifCreateRecord, vmCreateRecord } from '../core/restore-records';
import { TAGS, XCPB_KEYS, XO_KEYS } from '../core/xo-keys';
import { type XapiClient, XapiError } from '../xapi';
import { withXapiFailures } from './failures';
import { forgetImports } from './import-once';
import type { PoolRegistry } from './pools';
import { resolveSr } from './restore-xapi';
import type { ImportSlotActivities, ReplicaResult, SrWriterActivities } from './sr-writer-contract';
import { mergeOtherConfig, type VdiRecord, type VmRecord, vmByUuid, vmDisks } from './xapi-records';

const gone = (e: unknown) =>
  e instanceof XapiError && (e.code === 'HANDLE_INVALID' || e.code === 'UUID_INVALID');
const ignoreGone = (e: unknown) => {
  if (!gone(e)) throw e;
};

const entry = (vm: VmRecord) => ({
  uuid: vm.uuid,
  isSnapshot: vm.is_a_snapshot,
  otherConfig: vm.other_config ?? {},
});

/** The newest suspended snapshot of a suspended replica: what XAPI can clone (not the VM itself). */
async function suspendedSnapshot(xapi: XapiClient, vm: VmRecord): Promise<string> {
  const snaps = await Promise.all(
    vm.snapshots.map(async (ref) => ({ ref, snap: await xapi.getRecord<VmRecord>('VM', ref) })),
  );
  const found = snaps
    .filter((s) => s.snap.power_state === 'Suspended')
    .sort((a, b) => String(b.snap.snapshot_time).localeCompare(String(a.snap.snapshot_time)))[0];
  if (!found) throw new Error(`replica ${vm.uuid} is suspended and has no suspended snapshot to clone`);
  return found.ref;
}

/** Floats come back from a record read as `{ value }` objects: VM.create wants numbers. */
function xapiFloats(vm: VmRecord): VmRecord {
  const f = vm.HVM_shadow_multiplier as unknown;
  const n = typeof f === 'object' && f !== null && 'value' in f ? Number((f as { value: unknown }).value) : f;
  return { ...vm, HVM_shadow_multiplier: n };
}

/** Destroys a VM, its snapshots and every VDI they hold. */
async function destroyVmAndDisks(xapi: XapiClient, ref: string): Promise<void> {
  const vm = await xapi.getRecord<VmRecord>('VM', ref).catch((e) => {
    ignoreGone(e);
    return undefined;
  });
  if (!vm) return;
  for (const snap of vm.snapshots ?? []) await destroyVmAndDisks(xapi, snap);
  if (vm.power_state === 'Running' || vm.power_state === 'Paused')
    await xapi.callAsync('VM.hard_shutdown', ref).catch(ignoreGone);
  const vdis = (await vmDisks(xapi, vm)).map((d) => d.vdiRef);
  if (vm.suspend_VDI && vm.suspend_VDI !== NULL_REF) vdis.push(vm.suspend_VDI);
  await xapi.callAsync('VM.destroy', ref).catch(ignoreGone);
  for (const vdi of vdis) await xapi.callAsync('VDI.destroy', vdi).catch(ignoreGone);
}

/** Leftovers of interrupted transfers of this VM and schedule: destroyed, their uuids returned. */
export async function removeReplicaLeftovers(xapi: XapiClient, owner: ReplicaOwner): Promise<string[]> {
  const removed: string[] = [];
  for (const [ref, vm] of Object.entries(await xapi.getAllRecords<VmRecord>('VM'))) {
    if (!isLeftoverReplica(entry(vm), owner)) continue;
    await destroyVmAndDisks(xapi, ref);
    removed.push(vm.uuid);
  }
  // CR VDIs made before their VM (or whose VM is gone): still marked as importing.
  for (const [ref, vdi] of Object.entries(await xapi.getAllRecords<VdiRecord>('VDI'))) {
    const oc = vdi.other_config ?? {};
    if (
      oc[REPLICA_IMPORT_KEY] === undefined ||
      !isLeftoverReplica({ uuid: vdi.uuid, isSnapshot: false, otherConfig: oc }, owner)
    )
      continue;
    await xapi.callAsync('VDI.destroy', ref).catch(ignoreGone);
    removed.push(vdi.uuid);
  }
  removed.push(...(await removeOrphanReplicaVdis(xapi, owner)));
  // The tasks of their imports (activities/import-once) go with them.
  await forgetImports(xapi, replicaImportTaskPrefix(owner), { finishedOnly: true });
  return removed;
}

/** CR VDIs a killed transfer left before marking them (core/replica isOrphanReplicaVdi): destroyed. */
async function removeOrphanReplicaVdis(xapi: XapiClient, owner: ReplicaOwner): Promise<string[]> {
  const used = new Set<string>();
  for (const vbd of Object.values(await xapi.getAllRecords<{ VDI: string }>('VBD'))) used.add(vbd.VDI);
  for (const vm of Object.values(await xapi.getAllRecords<VmRecord>('VM')))
    if (vm.suspend_VDI && vm.suspend_VDI !== NULL_REF) used.add(vm.suspend_VDI);
  const removed: string[] = [];
  for (const [ref, vdi] of Object.entries(await xapi.getAllRecords<VdiRecord>('VDI'))) {
    const entry = { isSnapshot: vdi.is_a_snapshot === true, otherConfig: vdi.other_config ?? {} };
    if (!isOrphanReplicaVdi({ ...entry, usedByVm: used.has(ref) }, owner)) continue;
    await xapi.callAsync('VDI.destroy', ref).catch(ignoreGone);
    removed.push(vdi.uuid);
  }
  return removed;
}

/** The owner keys every CR VDI and replica carries (without `xo:backup:sr`: not complete yet). */
function ownerKeys(o: ReplicaOwner): Record<string, string> {
  return {
    [XO_KEYS.vm]: o.vmUuid,
    [XO_KEYS.job]: o.jobId,
    ...(o.scheduleId ? { [XO_KEYS.schedule]: o.scheduleId } : {}),
  };
}

/** How often a held import slot heartbeats: a dead holder frees it after the heartbeat timeout. */
const LEASE_HEARTBEAT_MS = 5_000;

export function createImportSlotActivities(): ImportSlotActivities {
  return {
    async holdImportSlot({ lease }) {
      const ctx = Context.current();
      // Running means a slot of the pool's `import` queue is ours: the workflow may start the transfer.
      const run = ctx.info.workflowExecution;
      if (!run) throw new Error('holdImportSlot leases a slot for a workflow: started without one');
      const { workflowId, runId } = run;
      await ctx.client.workflow.getHandle(workflowId, runId).signal(IMPORT_SLOT_SIGNAL, lease);
      for (;;) {
        ctx.heartbeat();
        // Rejects once the workflow releases the lease (cancels this activity): the slot is free.
        await ctx.sleep(LEASE_HEARTBEAT_MS);
      }
    },
  };
}

export function createSrWriterActivities(pools: PoolRegistry): SrWriterActivities {
  const owner = (r: ReplicaOwner): ReplicaOwner => ({
    vmUuid: r.vmUuid,
    jobId: r.jobId,
    scheduleId: r.scheduleId,
  });
  return {
    prepareSrTarget: (req) =>
      withXapiFailures(`preparing SR ${req.sr} of pool ${req.poolId}`, async () => {
        const xapi = await pools.client(req.poolId);
        const target = await resolveSr(xapi, req.poolId, req.sr);
        return { ...target, removed: await removeReplicaLeftovers(xapi, owner(req)) };
      }),

    cleanReplicaLeftovers: (req) =>
      withXapiFailures(`replica leftovers on pool ${req.poolId}`, async () =>
        removeReplicaLeftovers(await pools.client(req.poolId), owner(req)),
      ),

    findReplicaBases: (req) =>
      withXapiFailures(`replica bases on pool ${req.poolId}`, async () => {
        const xapi = await pools.client(req.poolId);
        const srRef = await xapi.call<string>('SR.get_by_uuid', req.srUuid);
        const vdis = Object.values(await xapi.getAllRecords<VdiRecord>('VDI'));
        const out: { found: Record<string, string>; missing: Record<string, string> } = {
          found: {},
          missing: {},
        };
        for (const b of req.bases) {
          // The previous replica's snapshot VDI made from this base (§6.1: xo:copy_of, content key).
          const candidates = vdis.filter(
            (v) =>
              v.SR === srRef &&
              v.is_a_snapshot === true &&
              v.other_config?.[XO_KEYS.copyOf] === b.baseVdiUuid &&
              v.other_config?.[XO_KEYS.vm] === req.vmUuid &&
              v.other_config?.[XO_KEYS.job] === req.jobId &&
              v.other_config?.[REPLICA_IMPORT_KEY] === undefined,
          );
          const found = candidates[0];
          if (!found) out.missing[b.chainVdiUuid] = `no replica of base ${b.baseVdiUuid} on SR ${req.srUuid}`;
          else if (found.other_config[XO_KEYS.contentKey] !== b.baseVdiUuid)
            out.missing[b.chainVdiUuid] = `replica VDI ${found.uuid} was altered (its content key changed)`;
          else out.found[b.chainVdiUuid] = found.uuid;
        }
        return out;
      }),

    createReplicaVdis: (req) =>
      withXapiFailures(`replica VDIs on pool ${req.poolId}`, async () => {
        const xapi = await pools.client(req.poolId);
        const source = await pools.client(req.sourcePoolId);
        const srRef = await xapi.call<string>('SR.get_by_uuid', req.srUuid);
        // A clone an earlier attempt made but did not mark yet (killed in between): not used, gone.
        await removeOrphanReplicaVdis(xapi, owner(req));
        const existing = Object.values(await xapi.getAllRecords<VdiRecord>('VDI'));
        const out: Record<string, string> = {};
        for (const d of req.disks) {
          // A retried attempt finds what the first one made.
          const made = existing.find(
            (v) =>
              v.other_config?.[REPLICA_IMPORT_KEY] === req.runId &&
              v.other_config?.[XO_KEYS.copyOf] === d.snapshotVdiUuid,
          );
          if (made) {
            out[d.key] = made.uuid;
            continue;
          }
          const src = await source.getRecord<VdiRecord>(
            'VDI',
            await source.call<string>('VDI.get_by_uuid', d.snapshotVdiUuid),
          );
          const size = Number(src.virtual_size);
          const marks = {
            ...ownerKeys(req),
            [REPLICA_IMPORT_KEY]: req.runId,
            [XO_KEYS.copyOf]: d.snapshotVdiUuid,
            [XO_KEYS.contentKey]: d.snapshotVdiUuid,
            [XCPB_KEYS.createdBy]: REPLICA_PURPOSE,
          };
          let ref: string;
          if (d.baseTargetVdiUuid) {
            // The clone carries its base's keys until marked: an orphan if killed in between.
            ref = await xapi.callAsync<string>(
              'VDI.clone',
              await xapi.call<string>('VDI.get_by_uuid', d.baseTargetVdiUuid),
              {},
            );
            await xapi.call('VDI.set_other_config', ref, marks);
            const now = Number(await xapi.call<string>('VDI.get_virtual_size', ref));
            if (size > now) await xapi.callAsync('VDI.resize', ref, String(size));
            await xapi.call('VDI.set_name_label', ref, src.name_label);
          } else {
            // Created marked: there is no moment a killed worker could leave it unmarked.
            ref = await xapi.call<string>('VDI.create', {
              name_label: src.name_label,
              name_description: String(src.name_description ?? ''),
              SR: srRef,
              virtual_size: String(size),
              type: d.suspend ? 'suspend' : 'user',
              sharable: false,
              read_only: false,
              other_config: marks,
              xenstore_data: {},
              sm_config: {},
              tags: [],
            });
          }
          out[d.key] = await xapi.call<string>('VDI.get_uuid', ref);
        }
        return out;
      }),

    finishDrReplica: (req) =>
      withXapiFailures(`DR replica ${req.importedVmUuid} on pool ${req.poolId}`, async () => {
        const xapi = await pools.client(req.poolId);
        const { ref, vm } = await vmByUuid(xapi, req.importedVmUuid);
        const source = (await vmByUuid(await pools.client(req.sourcePoolId), req.vmUuid)).vm;
        const result = await finishReplica(xapi, ref, vm, source, { ...req, kind: 'dr' });
        // Recorded on the replica: the import's task is not needed to find it again.
        await forgetImports(xapi, replicaImportTaskName(owner(req), req.runId, ''));
        return result;
      }),

    createCrReplica: (req) =>
      withXapiFailures(`CR replica on pool ${req.poolId}`, async () => {
        const xapi = await pools.client(req.poolId);
        const sourceXapi = await pools.client(req.sourcePoolId);
        const snap = (await vmByUuid(sourceXapi, req.snapshotUuid)).vm;
        const source = (await vmByUuid(sourceXapi, req.vmUuid)).vm;
        const warnings: string[] = [];
        const refOf = async (uuid: string) => xapi.call<string>('VDI.get_by_uuid', uuid);
        const suspendSource =
          snap.suspend_VDI !== NULL_REF
            ? await sourceXapi.call<string>('VDI.get_uuid', snap.suspend_VDI)
            : undefined;
        const suspendTarget = suspendSource ? req.vdis[suspendSource] : undefined;
        const suspended = suspendTarget !== undefined && snap.power_state === 'Suspended';
        if (suspended) {
          const cpu = async (x: XapiClient) => {
            const pool = Object.values(await x.getAllRecords<{ master: string }>('pool'))[0];
            return x.call<Record<string, string>>('host.get_cpu_info', pool.master);
          };
          const why = cpuMismatch(await cpu(sourceXapi), await cpu(xapi));
          if (why) warnings.push(why);
        }
        // A retried attempt finds the VM the first one made (created marked, so never unmarked),
        // and adds what it lacks: each step below is skipped when already done.
        let vmRef = Object.entries(await xapi.getAllRecords<VmRecord>('VM')).find(
          ([, v]) => !v.is_a_snapshot && v.other_config?.[REPLICA_IMPORT_KEY] === req.runId,
        )?.[0];
        if (!vmRef) {
          vmRef = await xapi.call<string>(
            'VM.create',
            vmCreateRecord(xapiFloats(snap), {
              name: `[Importing…] ${source.name_label}`,
              tags: [],
              otherConfig: {
                ...replicaOtherConfig(snap.other_config, { ...req, copyOf: req.vmUuid }),
                [REPLICA_IMPORT_KEY]: req.runId,
              },
              suspendVdiRef: suspended ? await refOf(suspendTarget) : undefined,
            }),
          );
        }
        const attached = new Set(
          await Promise.all(
            (await xapi.call<string[]>('VM.get_VBDs', vmRef)).map((b) => xapi.call<string>('VBD.get_VDI', b)),
          ),
        );
        for (const d of await vmDisks(sourceXapi, snap)) {
          const target = req.vdis[d.vdi.uuid];
          if (!target) continue;
          const targetRef = await refOf(target);
          if (attached.has(targetRef)) continue;
          await xapi.call(
            'VBD.create',
            vbdCreateRecord(vmRef, targetRef, {
              vdiKey: target,
              userdevice: String(d.vbd.userdevice),
              bootable: d.vbd.bootable === true,
              mode: String(d.vbd.mode ?? 'RW'),
            }),
          );
        }
        const devices = new Set(
          await Promise.all(
            (await xapi.call<string[]>('VM.get_VIFs', vmRef)).map((v) =>
              xapi.call<string>('VIF.get_device', v),
            ),
          ),
        );
        const networks = Object.entries(await xapi.getAllRecords<{ name_label: string }>('network'));
        for (const vifRef of snap.VIFs) {
          const vif = await sourceXapi.getRecord<Record<string, unknown>>('VIF', vifRef);
          if (devices.has(String(vif.device))) continue;
          const name = await sourceXapi.call<string>('network.get_name_label', vif.network).catch(() => '');
          const net = networks.find(([, n]) => n.name_label === name) ?? networks[0];
          if (!net) {
            warnings.push(`VIF ${vif.device}: pool ${req.poolId} has no network, left out`);
            continue;
          }
          await xapi.call('VIF.create', vifCreateRecord(vmRef, net[0], vif, false));
        }
        const vm = await xapi.getRecord<VmRecord>('VM', vmRef);
        // The VDIs are complete: they stop being leftovers once the VM is.
        for (const d of await vmDisks(xapi, vm)) {
          const { [REPLICA_IMPORT_KEY]: _, ...oc } = d.vdi.other_config ?? {};
          await xapi.call('VDI.set_other_config', d.vdiRef, oc);
        }
        if (suspendTarget) {
          const sref = await refOf(suspendTarget);
          const { [REPLICA_IMPORT_KEY]: _, ...oc } = await xapi.call<Record<string, string>>(
            'VDI.get_other_config',
            sref,
          );
          await xapi.call('VDI.set_other_config', sref, oc);
        }
        const result = await finishReplica(xapi, vmRef, vm, source, { ...req, kind: 'cr' });
        await forgetImports(xapi, replicaImportTaskName(owner(req), req.runId, ''));
        // The replica's snapshot keeps this point (the next delta's base, XO's `target snapshot`);
        // a replica is made once per run, so a snapshot it already has is this one.
        if ((await xapi.call<string[]>('VM.get_snapshots', vmRef)).length === 0)
          await xapi.callAsync(
            'VM.snapshot',
            vmRef,
            `${source.name_label} - ${req.jobName} / ${req.scheduleId ?? 'manual'} ${req.datetime}`,
          );
        return { ...result, warnings: [...warnings, ...result.warnings] };
      }),

    startReplicaCheck: (req) =>
      withXapiFailures(`health check of replica ${req.replicaVmUuid}`, async () => {
        const xapi = await pools.client(req.poolId);
        const { ref, vm } = await vmByUuid(xapi, req.replicaVmUuid);
        // A retried attempt finds the clone the first one made.
        let clone = Object.entries(await xapi.getAllRecords<VmRecord>('VM')).find(
          ([, v]) => !v.is_a_snapshot && v.other_config?.[RESTORE_KEY] === req.checkId,
        )?.[0];
        if (!clone) {
          const source = vm.power_state === 'Suspended' ? await suspendedSnapshot(xapi, vm) : ref;
          clone = await xapi.callAsync<string>('VM.clone', source, `${vm.name_label} (health check)`);
          if (source !== ref) await xapi.call('VM.set_is_a_template', clone, false);
          await xapi.call('VM.set_other_config', clone, {
            [RESTORE_KEY]: req.checkId,
            [XCPB_KEYS.createdBy]: 'health-check',
          });
          await xapi.call('VM.set_tags', clone, [...vm.tags, TAGS.noBackup]);
          await xapi.call('VM.set_blocked_operations', clone, {});
          // No network: the check VM must not answer as the production VM would.
          for (const vif of await xapi.call<string[]>('VM.get_VIFs', clone))
            await xapi.call('VIF.destroy', vif);
        }
        const state = await xapi.call<string>('VM.get_power_state', clone);
        if (state === 'Suspended') await xapi.callAsync('VM.resume', clone, false, false);
        else if (state === 'Halted') await xapi.callAsync('VM.start', clone, false, false);
        return { vmUuid: await xapi.call<string>('VM.get_uuid', clone), tags: vm.tags };
      }),

    applyReplicaRetention: (req) =>
      withXapiFailures(`replica retention on pool ${req.poolId}`, async () => {
        const xapi = await pools.client(req.poolId);
        const all = Object.entries(await xapi.getAllRecords<VmRecord>('VM'));
        const replicas = all.filter(([, vm]) => isCompleteReplica(entry(vm), owner(req), req.srUuid));
        const doomed = replicasBeyondRetention(
          replicas.map(([, vm]) => ({ uuid: vm.uuid, datetime: vm.other_config[XO_KEYS.datetime] ?? '' })),
          req.keep,
        );
        for (const d of doomed)
          await destroyVmAndDisks(xapi, replicas.find(([, vm]) => vm.uuid === d.uuid)![0]);
        return { kept: replicas.length - doomed.length, removed: doomed.map((d) => d.uuid) };
      }),
  };
}

/**
 * What makes a VM a replica, in XO's order: tags, HA cleared, name, start blocked, keys; then
 * `xo:backup:sr`, last, which marks it complete.
 */
async function finishReplica(
  xapi: XapiClient,
  ref: string,
  vm: VmRecord,
  source: VmRecord,
  o: ReplicaOwner & { srUuid: string; jobName: string; datetime: string; kind: 'dr' | 'cr' },
): Promise<ReplicaResult> {
  // The XVA of a snapshot imports as a template (a snapshot is one): a replica is a VM.
  if (vm.is_a_template) await xapi.call('VM.set_is_a_template', ref, false);
  const haCleared = Boolean(source.ha_restart_priority) || Boolean(vm.ha_restart_priority);
  if (vm.ha_restart_priority) await xapi.call('VM.set_ha_restart_priority', ref, '');
  await xapi.call('VM.set_tags', ref, replicaTags(source.tags ?? [], o.kind, haCleared));
  const name = replicaName(source.name_label, o.jobName, o.datetime);
  await xapi.call('VM.set_name_label', ref, name);
  await xapi.call('VM.set_blocked_operations', ref, {
    ...(vm.blocked_operations as Record<string, string>),
    start: START_BLOCKED_REASON,
    start_on: START_BLOCKED_REASON,
  });
  const keys = replicaOtherConfig(vm.other_config, { ...o, copyOf: source.uuid });
  await xapi.call('VM.set_other_config', ref, keys);
  await mergeOtherConfig(xapi, 'VM', ref, completeReplicaOtherConfig({}, o.srUuid));
  return { vmUuid: vm.uuid, name, haCleared, warnings: [] };
}
