import { randomUUID } from 'node:crypto';
import { link } from './objects/refs';
import { makeRecord } from './objects/schema';
import { createVbd, createVdi, createVif, randomMac, refreshAllSrs } from './objects/vdi';
import { refreshAllowedOperations } from './objects/vm';
import type { PoolState } from './pool';
import { NULL_REF } from './rpc/values';
import type { PoolScenario } from './scenario';
import { BLOCK_SIZE } from './storage/blockstore';
import { writeExt4FromFolder, writeImageFile, writeMemoryImage, writeRandomBlocks } from './storage/content';

/** Populates an empty pool from its scenario: pool, hosts, SRs, networks, VMs with disks and data. */
export async function buildPool(pool: PoolState, sc: PoolScenario): Promise<void> {
  const { db } = pool;
  const hosts: string[] = [];
  for (const [i, h] of sc.hosts.entries()) {
    const metrics = db.insert('host_metrics', makeRecord('host_metrics'));
    const host = db.insert(
      'host',
      makeRecord('host', {
        name_label: h.name,
        hostname: h.name,
        address: h.address,
        metrics,
        enabled: true,
        ...(h.cpu ? { cpu_info: { cpu_count: '4', socket_count: '1', ...h.cpu } } : {}),
      }),
    );
    const dom0 = db.insert(
      'VM',
      makeRecord('VM', {
        name_label: `Control domain on host: ${h.name}`,
        is_control_domain: true,
        power_state: 'Running',
        resident_on: host,
        domid: 0,
        other_config: { storage_driver_domain: 'OpaqueRef:NULL', is_system_domain: 'true' },
      }),
    );
    db.update('host', host, (r) => {
      r.control_domain = dom0;
      r.resident_VMs = [dom0];
    });
    hosts.push(host);
    if (i === 0) pool.hostRef = host;
  }
  const srs = new Map<string, string>();
  for (const s of sc.srs) {
    const sr = db.insert(
      'SR',
      makeRecord('SR', {
        uuid: s.uuid ?? randomUUID(),
        name_label: s.name,
        physical_size: s.size,
        type: s.type,
        content_type: 'user',
        shared: s.type !== 'ext',
      }),
    );
    for (const host of hosts) {
      const pbd = db.insert(
        'PBD',
        makeRecord('PBD', { host, SR: sr, device_config: { location: `/var/run/sr-mount/${s.id}` } }),
      );
      link(db, 'SR', sr, 'PBDs', pbd);
      link(db, 'host', host, 'PBDs', pbd);
    }
    srs.set(s.id, sr);
  }
  const defaultSr = srs.get(sc.srs.find((s) => s.default)?.id ?? sc.srs[0].id)!;
  pool.poolRef = db.insert(
    'pool',
    makeRecord('pool', {
      name_label: sc.name ?? sc.id,
      master: pool.hostRef,
      default_SR: defaultSr,
      suspend_image_SR: defaultSr,
      crash_dump_SR: defaultSr,
    }),
  );
  const networks = new Map<string, string>();
  for (const [i, n] of sc.networks.entries()) {
    const net = db.insert(
      'network',
      makeRecord('network', { name_label: n.name, bridge: n.bridge ?? `xenbr${i}` }),
    );
    for (const host of hosts) {
      const pif = db.insert(
        'PIF',
        makeRecord('PIF', { device: `eth${i}`, network: net, host, MAC: randomMac(), management: i === 0 }),
      );
      link(db, 'network', net, 'PIFs', pif);
      link(db, 'host', host, 'PIFs', pif);
    }
    networks.set(n.id, net);
  }
  for (const v of sc.vms) {
    const metrics = db.insert(
      'VM_metrics',
      makeRecord('VM_metrics', { memory_actual: v.memory, VCPUs_number: v.vcpus }),
    );
    const vm = db.insert(
      'VM',
      makeRecord('VM', {
        uuid: v.uuid ?? randomUUID(),
        name_label: v.name,
        name_description: v.description,
        tags: v.tags,
        is_a_template: v.template,
        memory_static_max: v.memory,
        memory_dynamic_max: v.memory,
        memory_dynamic_min: v.memory,
        memory_target: v.memory,
        VCPUs_max: v.vcpus,
        VCPUs_at_startup: v.vcpus,
        other_config: { ...v.other_config, mac_seed: randomUUID() },
        blocked_operations: v.blocked_operations,
        metrics,
      }),
    );
    for (const [i, d] of v.disks.entries()) {
      const sr = d.sr ? srs.get(d.sr)! : defaultSr;
      const vdi = createVdi(pool, {
        SR: sr,
        virtual_size: d.size,
        type: 'user',
        name_label: d.name ?? `${v.name} disk ${i}`,
        sharable: false,
        read_only: false,
        other_config: {},
      });
      const uuid = String(db.get('VDI', vdi).uuid);
      const c = d.content;
      if (typeof c === 'object' && c.type === 'random') {
        const count = c.blocks ?? Math.ceil(d.size / BLOCK_SIZE);
        await writeRandomBlocks(pool.store, uuid, d.size, count, c.seed);
      } else if (typeof c === 'object' && c.type === 'ext4') {
        await writeExt4FromFolder(pool.store, uuid, d.size, c.folder);
      } else if (typeof c === 'object' && c.type === 'image') {
        await writeImageFile(pool.store, uuid, d.size, c.path);
      }
      createVbd(pool, {
        VM: vm,
        VDI: vdi,
        userdevice: String(i),
        device: `xvd${String.fromCharCode(97 + i)}`,
        bootable: i === 0,
        mode: 'RW',
        type: 'Disk',
        empty: false,
        other_config: { owner: '' },
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      });
    }
    for (const [i, n] of v.networks.entries()) {
      createVif(pool, {
        VM: vm,
        network: networks.get(n)!,
        device: String(i),
        MAC: '',
        MTU: 1500,
        other_config: {},
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      });
    }
    await applyInitialPowerState(pool, vm, v.power);
    refreshAllowedOperations(pool, vm);
  }
  refreshAllSrs(pool);
}

async function applyInitialPowerState(pool: PoolState, vm: string, power: string): Promise<void> {
  const { db } = pool;
  if (power === 'Halted') return;
  const running = power === 'Running' || power === 'Paused';
  db.update('VM', vm, (r) => {
    r.power_state = power;
    r.resident_on = running ? pool.hostRef : NULL_REF;
    r.domid = running ? 1 : -1;
  });
  if (running) {
    link(db, 'host', pool.hostRef, 'resident_VMs', vm);
    for (const vbd of db.get('VM', vm).VBDs as string[]) {
      db.update('VBD', vbd, (r) => {
        r.currently_attached = true;
      });
    }
    for (const vif of db.get('VM', vm).VIFs as string[]) {
      db.update('VIF', vif, (r) => {
        r.currently_attached = true;
      });
    }
    const gm = db.insert('VM_guest_metrics', makeRecord('VM_guest_metrics'));
    db.update('VM', vm, (r) => {
      r.guest_metrics = gm;
    });
  }
  if (power === 'Suspended') {
    const r = db.get('VM', vm);
    const size = Math.ceil(Number(r.memory_static_max) / BLOCK_SIZE) * BLOCK_SIZE;
    const sr = String(db.get('pool', pool.poolRef).suspend_image_SR);
    const vdi = createVdi(pool, {
      SR: sr,
      virtual_size: size,
      type: 'suspend',
      name_label: `Suspend image for ${String(r.name_label)}`,
      sharable: false,
      read_only: false,
      other_config: {},
    });
    const uuid = String(db.get('VDI', vdi).uuid);
    await writeMemoryImage(pool.store, uuid, size, String(r.uuid));
    db.update('VM', vm, (x) => {
      x.suspend_VDI = vdi;
    });
  }
}
