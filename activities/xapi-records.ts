// The few XAPI record shapes and look-ups the backup activities share.
import type { XapiClient } from '../xapi';

export const NULL_REF = 'OpaqueRef:NULL';

export interface VmRecord {
  uuid: string;
  name_label: string;
  power_state: string;
  tags: string[];
  is_a_template: boolean;
  is_a_snapshot: boolean;
  is_control_domain: boolean;
  other_config: Record<string, string>;
  VBDs: string[];
  VIFs: string[];
  snapshots: string[];
  snapshot_of: string;
  snapshot_time: string;
  suspend_VDI: string;
  [field: string]: unknown;
}

export interface VbdRecord {
  VDI: string;
  VM: string;
  type: string;
  userdevice: string;
  [field: string]: unknown;
}

export interface VdiRecord {
  uuid: string;
  name_label: string;
  virtual_size: string | number;
  snapshot_of: string;
  SR: string;
  other_config: Record<string, string>;
  [field: string]: unknown;
}

export async function vmByUuid(xapi: XapiClient, uuid: string): Promise<{ ref: string; vm: VmRecord }> {
  const ref = await xapi.call<string>('VM.get_by_uuid', uuid);
  return { ref, vm: await xapi.getRecord<VmRecord>('VM', ref) };
}

export interface VmDisk {
  vbdRef: string;
  vbd: VbdRecord;
  vdiRef: string;
  vdi: VdiRecord;
}

/** The VM's disks: VBDs of type Disk with a VDI, in device order. */
export async function vmDisks(xapi: XapiClient, vm: VmRecord): Promise<VmDisk[]> {
  const disks: VmDisk[] = [];
  for (const vbdRef of vm.VBDs) {
    const vbd = await xapi.getRecord<VbdRecord>('VBD', vbdRef);
    if (vbd.type !== 'Disk' || vbd.VDI === NULL_REF) continue;
    disks.push({ vbdRef, vbd, vdiRef: vbd.VDI, vdi: await xapi.getRecord<VdiRecord>('VDI', vbd.VDI) });
  }
  return disks.sort((a, b) => Number(a.vbd.userdevice) - Number(b.vbd.userdevice));
}

export async function uuidOfRef(xapi: XapiClient, cls: string, ref: string): Promise<string | undefined> {
  if (!ref || ref === NULL_REF) return undefined;
  return await xapi.call<string>(`${cls}.get_uuid`, ref).catch(() => undefined);
}

/** Merges keys into a map field (set_other_config replaces the whole map). */
export async function mergeOtherConfig(
  xapi: XapiClient,
  cls: string,
  ref: string,
  keys: Record<string, string>,
): Promise<void> {
  const current = await xapi.call<Record<string, string>>(`${cls}.get_other_config`, ref);
  await xapi.call(`${cls}.set_other_config`, ref, { ...current, ...keys });
}
