// The XAPI records a delta restore creates, chosen from a backup's metadata (xo-backups.md §4.2).
// Pure: metadata records in, `VM.create` / `VBD.create` / `VIF.create` arguments out.

type XRecord = Record<string, unknown>;
export const NULL_REF = 'OpaqueRef:NULL';

/** VM fields copied from the backed-up VM: what defines the machine, not its runtime state. */
const VM_FIELDS = [
  'name_description',
  'user_version',
  'memory_static_max',
  'memory_dynamic_max',
  'memory_dynamic_min',
  'memory_static_min',
  'VCPUs_params',
  'VCPUs_max',
  'VCPUs_at_startup',
  'actions_after_softreboot',
  'actions_after_shutdown',
  'actions_after_reboot',
  'actions_after_crash',
  'PV_bootloader',
  'PV_kernel',
  'PV_ramdisk',
  'PV_args',
  'PV_bootloader_args',
  'PV_legacy_args',
  'HVM_boot_policy',
  'HVM_boot_params',
  'HVM_shadow_multiplier',
  'platform',
  'xenstore_data',
  'recommendations',
  'start_delay',
  'shutdown_delay',
  'order',
  'hardware_platform_version',
  'has_vendor_device',
  'domain_type',
  'NVRAM',
] as const;

/** Defaults for the fields VM.create requires when an old or hand-made metadata lacks them. */
const VM_DEFAULTS: XRecord = {
  user_version: 1,
  memory_static_max: 268435456,
  memory_dynamic_max: 268435456,
  memory_dynamic_min: 268435456,
  memory_static_min: 134217728,
  VCPUs_params: {},
  VCPUs_max: 1,
  VCPUs_at_startup: 1,
  actions_after_shutdown: 'destroy',
  actions_after_reboot: 'restart',
  actions_after_crash: 'restart',
  PV_bootloader: '',
  PV_kernel: '',
  PV_ramdisk: '',
  PV_args: '',
  PV_bootloader_args: '',
  PV_legacy_args: '',
  HVM_boot_policy: 'BIOS order',
  HVM_boot_params: { order: 'cd' },
  platform: {},
  PCI_bus: '',
  recommendations: '',
};

export interface VmCreateOptions {
  name: string;
  tags: string[];
  otherConfig: Record<string, string>;
  /** set for a memory backup: the VM is created Suspended on this VDI */
  suspendVdiRef?: string;
}

/** `VM.create` arguments for the restored VM (affinity, suspend SR, snapshots… are not carried). */
export function vmCreateRecord(source: XRecord, o: VmCreateOptions): XRecord {
  const record: XRecord = { ...VM_DEFAULTS };
  for (const field of VM_FIELDS) if (source[field] !== undefined) record[field] = source[field];
  return {
    ...record,
    name_label: o.name,
    is_a_template: false,
    affinity: NULL_REF,
    PCI_bus: '',
    ha_always_run: false,
    ha_restart_priority: '',
    blocked_operations: {},
    tags: o.tags,
    other_config: o.otherConfig,
    power_state: o.suspendVdiRef ? 'Suspended' : 'Halted',
    suspend_VDI: o.suspendVdiRef ?? NULL_REF,
  };
}

export interface VbdPlan {
  /** the metadata's VDI ref this VBD points at */
  vdiKey: string;
  userdevice: string;
  bootable: boolean;
  mode: string;
}

/**
 * The disk VBDs to recreate, in device order. From `vbds` when the metadata has them; otherwise one
 * per disk in the order of `vdis`, the first bootable.
 */
export function plannedVbds(
  vbds: Record<string, XRecord> | undefined,
  diskKeys: readonly string[],
): VbdPlan[] {
  const keys = new Set(diskKeys);
  const fromMetadata = Object.values(vbds ?? {})
    .filter((v) => (v.type ?? 'Disk') === 'Disk' && keys.has(String(v.VDI)))
    .map((v) => ({
      vdiKey: String(v.VDI),
      userdevice: String(v.userdevice ?? ''),
      bootable: v.bootable === true || v.bootable === 'true',
      mode: String(v.mode ?? 'RW'),
    }));
  const covered = new Set(fromMetadata.map((v) => v.vdiKey));
  const used = new Set(fromMetadata.map((v) => v.userdevice));
  let next = 0;
  for (const key of diskKeys) {
    if (covered.has(key)) continue;
    while (used.has(String(next))) next++;
    used.add(String(next));
    fromMetadata.push({
      vdiKey: key,
      userdevice: String(next),
      bootable: fromMetadata.length === 0,
      mode: 'RW',
    });
  }
  return fromMetadata.sort((a, b) => Number(a.userdevice) - Number(b.userdevice));
}

export function vbdCreateRecord(vmRef: string, vdiRef: string, plan: VbdPlan): XRecord {
  return {
    VM: vmRef,
    VDI: vdiRef,
    userdevice: plan.userdevice,
    bootable: plan.bootable,
    mode: plan.mode === 'RO' ? 'RO' : 'RW',
    type: 'Disk',
    empty: false,
    unpluggable: true,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  };
}

export interface NetworkChoice {
  ref: string;
  uuid: string;
  name_label: string;
}

/**
 * The target pool's network for a backed-up VIF: the same uuid (same pool), else the same name, else
 * the pool's first network; `why` says which, for the report. Undefined when the pool has none.
 */
export function chooseNetwork(
  vif: XRecord,
  networks: readonly NetworkChoice[],
): { network: NetworkChoice; why: string } | undefined {
  const uuid = vif.$network$uuid;
  const name = vif.$network$name_label;
  const byUuid = networks.find((n) => uuid && n.uuid === uuid);
  if (byUuid) return { network: byUuid, why: 'same network' };
  const byName = networks.find((n) => name && n.name_label === name);
  if (byName) return { network: byName, why: `network named ${JSON.stringify(name)}` };
  const first = networks[0];
  return first && { network: first, why: `no network like ${JSON.stringify(name ?? uuid)}: first network` };
}

export function vifCreateRecord(vmRef: string, networkRef: string, vif: XRecord, newMac: boolean): XRecord {
  return {
    device: String(vif.device ?? '0'),
    network: networkRef,
    VM: vmRef,
    MAC: newMac ? '' : String(vif.MAC ?? ''),
    MTU: Number(vif.MTU ?? 1500),
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  };
}
