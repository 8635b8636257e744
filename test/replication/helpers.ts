// Looking at replicas and their sources through XAPI and the simulator's control API.
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { type VmRecord, vmDisks } from '../../activities/xapi-records';
import { REPLICA_IMPORT_KEY } from '../../core/replica';
import type { RunReport, VmReport } from '../../core/run-report';
import { type BackupStack, readAll } from '../helpers/backup-stack';

export interface Found {
  ref: string;
  vm: VmRecord;
}

export async function vmsWhere(
  stack: BackupStack,
  poolId: string,
  keep: (vm: VmRecord) => boolean,
): Promise<Found[]> {
  const xapi = await stack.xapi(poolId);
  try {
    return Object.entries(await xapi.getAllRecords<VmRecord>('VM'))
      .filter(([, vm]) => keep(vm))
      .map(([ref, vm]) => ({ ref, vm }));
  } finally {
    await xapi.logout();
  }
}

/** Replica VMs (not their snapshots) of a VM made by a job, oldest first; `complete` = with xo:backup:sr. */
export async function replicasOf(stack: BackupStack, poolId: string, vmUuid: string, jobId: string) {
  const all = await vmsWhere(
    stack,
    poolId,
    (vm) =>
      !vm.is_a_snapshot &&
      vm.other_config['xo:backup:vm'] === vmUuid &&
      vm.other_config['xo:backup:job'] === jobId,
  );
  return all.sort((a, b) =>
    a.vm.other_config['xo:backup:datetime'].localeCompare(b.vm.other_config['xo:backup:datetime']),
  );
}

/** The newest job snapshot of a VM on its pool (what the last run exported). */
export async function newestJobSnapshot(stack: BackupStack, poolId: string, vmUuid: string, jobId: string) {
  const snaps = await vmsWhere(
    stack,
    poolId,
    (vm) =>
      vm.is_a_snapshot &&
      vm.other_config['xo:backup:vm'] === vmUuid &&
      vm.other_config['xo:backup:job'] === jobId,
  );
  snaps.sort((a, b) =>
    b.vm.other_config['xo:backup:datetime'].localeCompare(a.vm.other_config['xo:backup:datetime']),
  );
  return snaps[0];
}

/** The bytes of each disk of a VM, in device order. */
export async function diskBytes(stack: BackupStack, poolId: string, vm: VmRecord): Promise<Buffer[]> {
  const xapi = await stack.xapi(poolId);
  try {
    const out: Buffer[] = [];
    for (const d of await vmDisks(xapi, vm))
      out.push(await readAll(await stack.pool(poolId).control.readVdi(d.vdi.uuid)));
    return out;
  } finally {
    await xapi.logout();
  }
}

export async function vdiBytes(stack: BackupStack, poolId: string, vdiRef: string): Promise<Buffer> {
  const xapi = await stack.xapi(poolId);
  try {
    const uuid = await xapi.call<string>('VDI.get_uuid', vdiRef);
    return await readAll(await stack.pool(poolId).control.readVdi(uuid));
  } finally {
    await xapi.logout();
  }
}

/** Nothing half-done on the target pool: no VM without xo:backup:sr, no VDI still importing. */
export async function expectNoLeftovers(stack: BackupStack, poolId: string, vmUuid: string): Promise<void> {
  const xapi = await stack.xapi(poolId);
  try {
    const vms = Object.values(await xapi.getAllRecords<VmRecord>('VM')).filter(
      (vm) =>
        !vm.is_a_snapshot && vm.other_config['xo:backup:vm'] === vmUuid && !vm.other_config['xo:backup:sr'],
    );
    expect(vms.map((v) => v.name_label)).toEqual([]);
    const vdis = Object.values(
      await xapi.getAllRecords<{ uuid: string; other_config: Record<string, string> }>('VDI'),
    );
    expect(vdis.filter((v) => v.other_config[REPLICA_IMPORT_KEY] !== undefined).map((v) => v.uuid)).toEqual(
      [],
    );
    // Every VDI of the SR belongs to a VM or a snapshot: no orphan.
    const attached = new Set<string>();
    for (const [, vm] of Object.entries(await xapi.getAllRecords<VmRecord>('VM'))) {
      for (const d of await vmDisks(xapi, vm)) attached.add(d.vdi.uuid);
      if (vm.suspend_VDI !== 'OpaqueRef:NULL')
        attached.add(await xapi.call<string>('VDI.get_uuid', vm.suspend_VDI));
    }
    const orphans = Object.values(
      await xapi.getAllRecords<{
        uuid: string;
        is_a_snapshot: boolean;
        other_config: Record<string, string>;
      }>('VDI'),
    ).filter((v) => v.other_config['xo:backup:vm'] === vmUuid && !attached.has(v.uuid));
    expect(orphans.map((v) => v.uuid)).toEqual([]);
  } finally {
    await xapi.logout();
  }
}

export function vmReport(report: RunReport, name: string): VmReport {
  const vm = report.vms.find((v) => v.vmName === name);
  if (!vm) throw new Error(`no VM ${name} in ${JSON.stringify(report.vms.map((v) => v.vmName))}`);
  return vm;
}

/** Disk contents compared without a megabyte diff: sizes and the first differing 2 MiB block. */
export function describeDisks(disks: Buffer[]): string[] {
  return disks.map((d) => {
    const blocks: string[] = [];
    for (let o = 0; o < d.length; o += 2 * 1024 * 1024) {
      const b = d.subarray(o, o + 2 * 1024 * 1024);
      blocks.push(b.every((x) => x === 0) ? '0' : createHash('sha1').update(b).digest('hex').slice(0, 8));
    }
    return `${d.length}: ${blocks.join(' ')}`;
  });
}
