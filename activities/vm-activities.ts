// Activities that act on VMs through XAPI: selection, preflight, snapshots and their cleanup.
import { formatBackupTimestamp, parseBackupTimestamp } from '../core/backup-time';
import type { JobSnapshot } from '../core/delta-base';
import { effectiveSnapshotMode } from '../core/snapshot-mode';
import { decideSnapshotRetention, type SnapshotVerdict } from '../core/snapshot-retention';
import { missingExplicitVms, selectionPage, selectVms, type VmCandidate } from '../core/vm-selection';
import { NOBAK_MARK, XCPB_KEYS, XO_KEYS } from '../core/xo-keys';
import { type XapiClient, XapiError } from '../xapi';
import type { BackupActivities, Preflight, SnapshotInfo, VmRef } from './contract';
import { permanent, withXapiFailures } from './failures';
import type { PoolRegistry } from './pools';
import { mergeOtherConfig, NULL_REF, uuidOfRef, type VmRecord, vmByUuid, vmDisks } from './xapi-records';

type VmActivities = Pick<
  BackupActivities,
  | 'selectVms'
  | 'preflightVm'
  | 'listJobSnapshots'
  | 'shutdownVm'
  | 'startVm'
  | 'takeSnapshot'
  | 'markSnapshotExported'
  | 'cleanupSnapshots'
  | 'deleteSnapshot'
>;

/** How long a run's later selection pages may page through its first page's listing. */
const LISTING_TTL_MS = 10 * 60_000;
/** Listings kept (one per selection of the latest runs; ~2 MB each at 10,000 VMs). */
const LISTINGS_KEPT = 8;

/** Name a snapshot carries while it is being taken: a retried attempt finds it by this name. */
export const tempSnapshotName = (runId: string) => `xcpb-backup-temp ${runId}`;

export function createVmActivities(pools: PoolRegistry): VmActivities {
  const withVm = async <T>(
    req: VmRef,
    what: string,
    fn: (xapi: XapiClient, ref: string, vm: VmRecord) => Promise<T>,
  ) =>
    withXapiFailures(`${what} of VM ${req.vmUuid} on pool ${req.poolId}`, async () => {
      const xapi = await pools.client(req.poolId);
      const { ref, vm } = await vmByUuid(xapi, req.vmUuid);
      return fn(xapi, ref, vm);
    });

  /**
   * The VM listings of the latest first pages, by selection: a job of 10,000 VMs reads its selection
   * in 10 pages, and listing every VM of the pools again for each (VM.get_all_records: ~10 s at
   * 10,000 VMs, while no VM runs) cost more than the pages themselves. A first page always lists
   * anew (the selection is made when the run starts); a page after it on another worker lists again.
   */
  const listings = new Map<string, { at: number; candidates: VmCandidate[] }>();
  const remember = (key: string, candidates: VmCandidate[]) => {
    listings.delete(key);
    listings.set(key, { at: Date.now(), candidates });
    for (const old of listings.keys()) if (listings.size > LISTINGS_KEPT) listings.delete(old);
  };
  const listCandidates = async (selection: { pools?: string[] }): Promise<VmCandidate[]> => {
    const candidates: VmCandidate[] = [];
    for (const poolId of selection.pools ?? pools.ids()) {
      const xapi = await withXapiFailures(`listing VMs of pool ${poolId}`, () => pools.client(poolId));
      const records = await withXapiFailures(`listing VMs of pool ${poolId}`, () =>
        xapi.getAllRecords<VmRecord>('VM'),
      );
      for (const vm of Object.values(records)) {
        candidates.push({
          uuid: vm.uuid,
          name: vm.name_label,
          poolId,
          powerState: vm.power_state,
          tags: vm.tags ?? [],
          isTemplate: Boolean(vm.is_a_template),
          isSnapshot: Boolean(vm.is_a_snapshot),
          isControlDomain: Boolean(vm.is_control_domain),
          otherConfig: vm.other_config ?? {},
        });
      }
    }
    return candidates;
  };

  return {
    async selectVms({ vms: selection, after, limit }) {
      const job = { vms: selection };
      // A run's first page lists the pools now; its later pages page through that same listing
      // (see listings), unless it is older than LISTING_TTL_MS (then they list again).
      const key = JSON.stringify(selection);
      const kept = after !== undefined ? listings.get(key) : undefined;
      const candidates =
        kept && Date.now() - kept.at < LISTING_TTL_MS ? kept.candidates : await listCandidates(job.vms);
      if (kept?.candidates !== candidates) remember(key, candidates);
      const all = selectVms(job.vms, candidates);
      const missing = after === undefined ? missingExplicitVms(job.vms, candidates) : [];
      if (limit === undefined) return { ...all, excludedCount: all.excluded.length, missing };
      return { ...selectionPage(all.selected, after, limit), excludedCount: all.excluded.length, missing };
    },

    preflightVm: (req) =>
      withVm(req, 'preflight', async (xapi, _ref, vm): Promise<Preflight> => {
        if (vm.is_a_template || vm.is_a_snapshot)
          throw permanent(`VM ${req.vmUuid} is a template or a snapshot`, 'VM_IS_TEMPLATE');
        const busy = Object.values((vm.current_operations as Record<string, string>) ?? {}).find((op) =>
          /migrate/.test(op),
        );
        if (busy) throw permanent(`VM ${vm.name_label} is being migrated (${busy})`, 'VM_MIGRATING');
        const { mode, why } = effectiveSnapshotMode(req.snapshotMode, vm.tags ?? []);
        const disks = (await vmDisks(xapi, vm)).map((d) => ({
          vdiUuid: d.vdi.uuid,
          name: d.vdi.name_label,
          size: Number(d.vdi.virtual_size),
          ignored: d.vdi.name_label.includes(NOBAK_MARK),
        }));
        return {
          vmName: vm.name_label,
          powerState: vm.power_state,
          tags: vm.tags ?? [],
          snapshotMode: mode,
          snapshotModeWhy: why,
          disks,
        };
      }),

    listJobSnapshots: (req) =>
      withVm(req, 'listing job snapshots', async (xapi, _ref, vm) =>
        jobSnapshots(xapi, vm, req.jobId, req.vmUuid),
      ),

    shutdownVm: (req) =>
      withVm(req, 'clean shutdown', async (xapi, ref, vm) => {
        if (vm.power_state === 'Running') await xapi.callAsync('VM.clean_shutdown', ref);
      }),

    startVm: (req) =>
      withVm(req, 'start', async (xapi, ref, vm) => {
        if (vm.power_state === 'Halted') await xapi.callAsync('VM.start', ref, false, false);
      }),

    takeSnapshot: (req) =>
      withVm(req, 'snapshot', async (xapi, ref, vm): Promise<SnapshotInfo> => {
        let found = await findRunSnapshot(xapi, vm, req.runId);
        let kind: SnapshotInfo['kind'] =
          (found?.other_config[XCPB_KEYS.snapshotKind] as SnapshotInfo['kind']) ?? 'snapshot';
        let note: string | undefined;
        if (!found) {
          const name = tempSnapshotName(req.runId);
          let snapRef: string;
          ({ snapRef, kind, note } = await snapshotVm(xapi, ref, vm, name, req.mode, req.ignoreVdiUuids));
          found = { ref: snapRef, other_config: {} };
        }
        const snap = await xapi.getRecord<VmRecord>('VM', found.ref);
        const datetime = snap.other_config[XO_KEYS.datetime] ?? (await nextBackupTime(xapi, vm, req.after));
        const keys: Record<string, string> = {
          [XO_KEYS.job]: req.jobId,
          [XO_KEYS.vm]: req.vmUuid,
          [XO_KEYS.datetime]: datetime,
          [XCPB_KEYS.run]: req.runId,
          [XCPB_KEYS.snapshotKind]: kind,
          ...(req.scheduleId ? { [XO_KEYS.schedule]: req.scheduleId } : {}),
        };
        await mergeOtherConfig(xapi, 'VM', found.ref, keys);
        const vdis: Record<string, string> = {};
        for (const d of await vmDisks(xapi, snap)) {
          const liveUuid = await uuidOfRef(xapi, 'VDI', d.vdi.snapshot_of);
          if (liveUuid) vdis[liveUuid] = d.vdi.uuid;
          await mergeOtherConfig(xapi, 'VDI', d.vdiRef, { ...keys, [XO_KEYS.contentKey]: d.vdi.uuid });
        }
        await xapi.call('VM.set_name_label', found.ref, `[xcpb ${req.jobId}] ${vm.name_label}`);
        return {
          uuid: snap.uuid,
          datetime,
          kind,
          note,
          vdis,
          suspendVdiUuid: await uuidOfRef(xapi, 'VDI', snap.suspend_VDI),
          // Listed here, with the new snapshot labelled, to spare the workflow a round trip.
          jobSnapshots: await jobSnapshots(
            xapi,
            (await vmByUuid(xapi, req.vmUuid)).vm,
            req.jobId,
            req.vmUuid,
          ),
        };
      }),

    markSnapshotExported: (req) =>
      withXapiFailures(`marking snapshot ${req.snapshotUuid} exported`, async () => {
        const xapi = await pools.client(req.poolId);
        const { ref, vm } = await vmByUuid(xapi, req.snapshotUuid);
        const keys = { [XO_KEYS.exported]: 'true', [XO_KEYS.deltaChainLength]: String(req.deltaChainLength) };
        await mergeOtherConfig(xapi, 'VM', ref, keys);
        for (const d of await vmDisks(xapi, vm)) await mergeOtherConfig(xapi, 'VDI', d.vdiRef, keys);
      }),

    cleanupSnapshots: (req) =>
      withVm(req, 'snapshot cleanup', async (xapi, _ref, vm): Promise<SnapshotVerdict[]> => {
        const snapshots = await jobSnapshots(xapi, vm, req.jobId, req.vmUuid);
        const verdicts = decideSnapshotRetention({
          mode: req.mode,
          scheduleId: req.scheduleId,
          keep: req.keep,
          snapshots,
        });
        for (const v of verdicts.filter((v) => !v.keep)) {
          await destroySnapshot(xapi, await xapi.call<string>('VM.get_by_uuid', v.uuid));
        }
        // Snapshots of this job interrupted before they were labelled (a run that was terminated).
        for (const snapRef of vm.snapshots) {
          const name = await xapi.call<string>('VM.get_name_label', snapRef).catch(() => '');
          if (name.startsWith(tempSnapshotName(`xcpb:${req.jobId}:`))) {
            const oc = await xapi.call<Record<string, string>>('VM.get_other_config', snapRef);
            if (!oc[XO_KEYS.job]) {
              await destroySnapshot(xapi, snapRef);
              verdicts.push({
                uuid: await xapi.call<string>('VM.get_uuid', snapRef).catch(() => '?'),
                datetime: '',
                keep: false,
                why: 'unlabelled leftover',
              });
            }
          }
        }
        return verdicts;
      }),

    deleteSnapshot: (req) =>
      withXapiFailures(`deleting snapshot ${req.snapshotUuid}`, async () => {
        const xapi = await pools.client(req.poolId);
        const ref = await xapi.call<string>('VM.get_by_uuid', req.snapshotUuid).catch((e) => {
          if (e instanceof XapiError && (e.code === 'UUID_INVALID' || e.code === 'HANDLE_INVALID'))
            return undefined;
          throw e;
        });
        if (ref) await destroySnapshot(xapi, ref);
      }),
  };
}

/**
 * The new backup's `<ts>`: now, but always after the VM's other backup snapshots and the newest backup
 * on the targets. Names have one-second precision; two backups of a VM within one second would
 * otherwise share a name, and a delta would overwrite, and point at, its own parent.
 */
async function nextBackupTime(xapi: XapiClient, vm: VmRecord, after?: string): Promise<string> {
  let floor = after ? (parseBackupTimestamp(after) ?? 0) : 0;
  for (const ref of vm.snapshots) {
    const oc = await xapi
      .call<Record<string, string>>('VM.get_other_config', ref)
      .catch(() => ({}) as Record<string, string>);
    const taken = oc[XO_KEYS.datetime] ? parseBackupTimestamp(oc[XO_KEYS.datetime]) : undefined;
    if (taken !== undefined && taken > floor) floor = taken;
  }
  return formatBackupTimestamp(Math.max(Date.now(), floor + 1_000));
}

async function findRunSnapshot(xapi: XapiClient, vm: VmRecord, runId: string) {
  for (const ref of vm.snapshots) {
    const snap = await xapi.getRecord<VmRecord>('VM', ref);
    if (snap.other_config[XCPB_KEYS.run] === runId || snap.name_label === tempSnapshotName(runId)) {
      return { ref, other_config: snap.other_config };
    }
  }
  return undefined;
}

async function snapshotVm(
  xapi: XapiClient,
  ref: string,
  vm: VmRecord,
  name: string,
  mode: string,
  ignoreVdiUuids: string[],
): Promise<{ snapRef: string; kind: SnapshotInfo['kind']; note?: string }> {
  const ignore = await Promise.all(ignoreVdiUuids.map((u) => xapi.call<string>('VDI.get_by_uuid', u)));
  const plain = () => xapi.callAsync<string>('VM.snapshot', ref, name, ignore);
  if (mode === 'memory') {
    if (vm.power_state !== 'Running')
      return { snapRef: await plain(), kind: 'snapshot', note: `VM ${vm.power_state}: no memory to save` };
    return { snapRef: await xapi.callAsync<string>('VM.checkpoint', ref, name), kind: 'checkpoint' };
  }
  if (mode === 'quiesce') {
    try {
      return {
        snapRef: await xapi.callAsync<string>('VM.snapshot_with_quiesce', ref, name),
        kind: 'quiesced',
      };
    } catch (err) {
      const why = err instanceof XapiError ? err.code : (err as Error).message;
      return {
        snapRef: await plain(),
        kind: 'snapshot',
        note: `quiesced snapshot unavailable (${why}), normal snapshot taken`,
      };
    }
  }
  return { snapRef: await plain(), kind: 'snapshot' };
}

async function jobSnapshots(
  xapi: XapiClient,
  vm: VmRecord,
  jobId: string,
  vmUuid: string,
): Promise<JobSnapshot[]> {
  const out: JobSnapshot[] = [];
  for (const ref of vm.snapshots) {
    const snap = await xapi.getRecord<VmRecord>('VM', ref);
    const oc = snap.other_config ?? {};
    if (oc[XO_KEYS.job] !== jobId || oc[XO_KEYS.vm] !== vmUuid || oc[XO_KEYS.copyOf]) continue;
    const vdis: Record<string, string> = {};
    for (const d of await vmDisks(xapi, snap)) {
      const live = await uuidOfRef(xapi, 'VDI', d.vdi.snapshot_of);
      if (live) vdis[live] = d.vdi.uuid;
    }
    out.push({
      uuid: snap.uuid,
      datetime: oc[XO_KEYS.datetime] ?? '',
      scheduleId: oc[XO_KEYS.schedule],
      exported: oc[XO_KEYS.exported] === 'true',
      deltaChainLength: Number(oc[XO_KEYS.deltaChainLength] ?? 0),
      vdis,
    });
  }
  return out;
}

/** Destroys a snapshot and the disks it owns (its VDIs and suspend VDI), as XO does. */
export async function destroySnapshot(xapi: XapiClient, snapRef: string): Promise<void> {
  const snap = await xapi.getRecord<VmRecord>('VM', snapRef);
  const vdiRefs = (await vmDisks(xapi, snap)).map((d) => d.vdiRef);
  if (snap.suspend_VDI && snap.suspend_VDI !== NULL_REF) vdiRefs.push(snap.suspend_VDI);
  await xapi.callAsync('VM.destroy', snapRef);
  for (const vdiRef of vdiRefs) {
    await xapi.callAsync('VDI.destroy', vdiRef).catch((e) => {
      if (!(e instanceof XapiError && e.code === 'HANDLE_INVALID')) throw e;
    });
  }
}
