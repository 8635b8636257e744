import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimPool, type Simulator, startSimulator } from '../../simulator/index';
import { smallScenario } from './fixtures';
import { failureOf, login, rpc, vmByName, waitTask } from './rpc-helpers';

let sim: Simulator;
let pool: SimPool;
let url: string;
let s: string;
beforeAll(async () => {
  sim = await startSimulator({ scenario: smallScenario() });
  pool = sim.pool('lab');
  url = pool.url;
  s = await login(url);
});
afterAll(() => sim?.close());

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function diskVdis(vm: string): Promise<string[]> {
  const vbds = await rpc<string[]>(url, 'VM.get_VBDs', s, vm);
  const out: string[] = [];
  for (const vbd of vbds) {
    const r = await rpc(url, 'VBD.get_record', s, vbd);
    if (r.type === 'Disk') out.push(r.VDI);
  }
  return out;
}

describe('VM.snapshot and friends', () => {
  it('snapshot: a halted template with is_a_snapshot, snapshot_of, VDI snapshots sharing blocks; ignore_vdis honoured', async () => {
    const vm = await vmByName(url, s, 'prod-1');
    const [root, data] = await diskVdis(vm);
    const snap = await rpc(url, 'VM.snapshot', s, vm, 'snap-1', [data]);
    const r = await rpc(url, 'VM.get_record', s, snap);
    expect(r).toMatchObject({
      is_a_snapshot: true,
      is_a_template: true,
      snapshot_of: vm,
      power_state: 'Halted',
      name_label: 'snap-1',
      tags: ['prod'],
      snapshot_info: { 'power-state-at-snapshot': 'Running' },
    });
    expect(r.snapshot_time).not.toBe('19700101T00:00:00Z');
    expect(await rpc(url, 'VM.get_snapshots', s, vm)).toContain(snap);
    const snapVdis = await diskVdis(snap);
    expect(snapVdis).toHaveLength(1);
    const sv = await rpc(url, 'VDI.get_record', s, snapVdis[0]);
    expect(sv).toMatchObject({ is_a_snapshot: true, snapshot_of: root });
    const rootUuid = await rpc(url, 'VDI.get_uuid', s, root);
    const a = await pool.control.vdiInfo(rootUuid);
    const b = await pool.control.vdiInfo(sv.uuid);
    expect(b.allocatedBlocks).toEqual(a.allocatedBlocks);
    expect(a.chainLength).toBe(b.chainLength + 1);
    // VIFs copied, keeping MACs
    const vifs = await rpc(url, 'VM.get_VIFs', s, snap);
    const srcVifs = await rpc(url, 'VM.get_VIFs', s, vm);
    expect(await rpc(url, 'VIF.get_MAC', s, vifs[0])).toBe(await rpc(url, 'VIF.get_MAC', s, srcVifs[0]));
    await rpc(url, 'VM.set_is_a_template', s, snap, false);
    expect(await rpc(url, 'VM.get_is_a_template', s, snap)).toBe(false);
  });

  it('checkpoint of a running VM gives a Suspended snapshot with a suspend VDI holding memory', async () => {
    const vm = await vmByName(url, s, 'prod-1');
    const cp = await rpc(url, 'VM.checkpoint', s, vm, 'cp');
    const r = await rpc(url, 'VM.get_record', s, cp);
    expect(r.power_state).toBe('Suspended');
    const susp = await rpc(url, 'VDI.get_record', s, r.suspend_VDI);
    expect(susp.type).toBe('suspend');
    expect(susp.virtual_size).toBeGreaterThanOrEqual(r.memory_static_max);
    const info = await pool.control.vdiInfo(susp.uuid);
    const blocks = Math.ceil(susp.virtual_size / (2 * 1024 * 1024));
    expect(info.allocatedBlocks).toEqual(
      [...Array(blocks).keys()].filter((i) => i % 8 === 0 || i === blocks - 1),
    );
    const memory = await readAll(await pool.control.readVdi(susp.uuid));
    expect(memory.subarray(0, 4096).equals(Buffer.alloc(4096))).toBe(false);
    const halted = await vmByName(url, s, 'dev-1');
    expect(await failureOf(url, 'VM.checkpoint', s, halted, 'x')).toEqual([
      'VM_BAD_POWER_STATE',
      halted,
      'paused, suspended, running',
      'halted',
    ]);
  });

  it('clone and copy of a halted VM; destroy keeps VDIs; power cycle', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    const clone = await rpc(url, 'VM.clone', s, vm, 'dev-clone');
    const copy = await rpc(url, 'VM.copy', s, vm, 'dev-copy', 'OpaqueRef:NULL');
    for (const c of [clone, copy]) {
      const [v] = await diskVdis(c);
      const [orig] = await diskVdis(vm);
      expect(v).not.toBe(orig);
      const bytes = async (ref: string) => {
        const uuid = await rpc(url, 'VDI.get_uuid', s, ref);
        const chunks: Buffer[] = [];
        for await (const ch of await pool.control.readVdi(uuid)) chunks.push(ch as Buffer);
        return Buffer.concat(chunks);
      };
      expect((await bytes(v)).equals(await bytes(orig))).toBe(true);
    }
    const [copyVdi] = await diskVdis(copy);
    await rpc(url, 'VM.start', s, copy, false, false);
    expect(await rpc(url, 'VM.get_power_state', s, copy)).toBe('Running');
    await rpc(url, 'VM.suspend', s, copy);
    expect(await rpc(url, 'VM.get_power_state', s, copy)).toBe('Suspended');
    await rpc(url, 'VM.resume', s, copy, false, false);
    await rpc(url, 'VM.clean_shutdown', s, copy);
    expect(await rpc(url, 'VM.get_power_state', s, copy)).toBe('Halted');
    await rpc(url, 'VM.destroy', s, copy);
    expect(await failureOf(url, 'VM.get_record', s, copy)).toEqual(['HANDLE_INVALID', 'VM', copy]);
    expect(await rpc(url, 'VDI.get_VBDs', s, copyVdi)).toEqual([]);
    await rpc(url, 'VDI.destroy', s, copyVdi);
  });
});

describe("XAPI's checks, in XAPI's order, with XAPI's params", () => {
  it('OPERATION_BLOCKED [vm, reason] comes before the power state check', async () => {
    const vm = await vmByName(url, s, 'prod-1');
    await rpc(url, 'VM.add_to_blocked_operations', s, vm, 'start', 'replica: do not start');
    expect(await failureOf(url, 'VM.start', s, vm, false, false)).toEqual([
      'OPERATION_BLOCKED',
      vm,
      'replica: do not start',
    ]);
    await rpc(url, 'VM.remove_from_blocked_operations', s, vm, 'start');
    expect(await failureOf(url, 'VM.start', s, vm, false, false)).toEqual([
      'VM_BAD_POWER_STATE',
      vm,
      'halted',
      'running',
    ]);
  });

  it('VM_BAD_POWER_STATE [vm, expected, actual] with lowercase states', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    expect(await failureOf(url, 'VM.clean_shutdown', s, vm)).toEqual([
      'VM_BAD_POWER_STATE',
      vm,
      'running',
      'halted',
    ]);
    expect(await failureOf(url, 'VM.hard_shutdown', s, vm)).toEqual([
      'VM_BAD_POWER_STATE',
      vm,
      'paused, suspended, running',
      'halted',
    ]);
  });

  it('OTHER_OPERATION_IN_PROGRESS [VM, vm, op, task] while another operation runs', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    await pool.control.delay('VM.clone', 400);
    const task = await rpc(url, 'Async.VM.clone', s, vm, 'slow-clone');
    let err: string[] = [];
    for (let i = 0; i < 100; i++) {
      const ops = await rpc(url, 'VM.get_current_operations', s, vm);
      if (Object.keys(ops).length > 0) {
        err = await failureOf(url, 'VM.start', s, vm, false, false);
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(err).toEqual(['OTHER_OPERATION_IN_PROGRESS', 'VM', vm, 'clone', task]);
    expect((await waitTask(url, s, task)).status).toBe('success');
    await pool.control.delay('VM.clone', 0);
    expect(await rpc(url, 'VM.get_current_operations', s, vm)).toEqual({});
  });

  it('VM_IS_TEMPLATE [vm, op] and VM_IS_SNAPSHOT [vm, op]', async () => {
    const tmpl = await vmByName(url, s, 'tmpl');
    expect(await failureOf(url, 'VM.start', s, tmpl, false, false)).toEqual([
      'VM_IS_TEMPLATE',
      tmpl,
      'start',
    ]);
    expect(await failureOf(url, 'VM.snapshot', s, tmpl, 'x')).toEqual(['VM_IS_TEMPLATE', tmpl, 'snapshot']);
    const vm = await vmByName(url, s, 'dev-1');
    const snap = await rpc(url, 'VM.snapshot', s, vm, 'snap');
    expect(await failureOf(url, 'VM.snapshot', s, snap, 'x')).toEqual(['VM_IS_SNAPSHOT', snap, 'snapshot']);
    await rpc(url, 'VM.destroy', s, snap);
  });

  it('VDI_IN_USE [vdi, destroy] for a disk attached to a running VM', async () => {
    const vm = await vmByName(url, s, 'prod-1');
    const [root] = await diskVdis(vm);
    expect(await failureOf(url, 'VDI.destroy', s, root)).toEqual(['VDI_IN_USE', root, 'destroy']);
  });

  it('SR_FULL [requested, maximum] when a VDI does not fit', async () => {
    const srs = await rpc(url, 'SR.get_all_records', s);
    const [sr, rec] = Object.entries<any>(srs).find(([, r]) => r.name_label === 'Second SR')!;
    const free = rec.physical_size - rec.physical_utilisation;
    const args = {
      SR: sr,
      virtual_size: free + 1,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
      name_label: 'big',
    };
    expect(await failureOf(url, 'VDI.create', s, args)).toEqual(['SR_FULL', String(free + 1), String(free)]);
    const ok = await rpc(url, 'VDI.create', s, { ...args, virtual_size: 1024 * 1024 });
    expect(await rpc(url, 'VDI.get_virtual_size', s, ok)).toBe(1024 * 1024);
    await rpc(url, 'VDI.destroy', s, ok);
  });

  it('SR_BACKEND_FAILURE_109 past the VHD chain limit, until the chain coalesces', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    const [root] = await diskVdis(vm);
    const uuid = await rpc(url, 'VDI.get_uuid', s, root);
    const start = (await pool.control.vdiInfo(uuid)).chainLength;
    await pool.control.settings({ maxChainLength: start + 3 });
    const snaps: string[] = [];
    for (let i = 0; i < 3; i++) snaps.push(await rpc(url, 'VM.snapshot', s, vm, `chain-${i}`));
    expect((await pool.control.vdiInfo(uuid)).chainLength).toBe(start + 3);
    expect(await failureOf(url, 'VM.snapshot', s, vm, 'one too many')).toEqual([
      'SR_BACKEND_FAILURE_109',
      '',
      'The snapshot chain is too long',
      '',
    ]);
    // deleting snapshots (and their VDIs, as backup retention does) lets the chain coalesce
    for (const snap of snaps.slice(0, 2)) {
      const vdis = await diskVdis(snap);
      await rpc(url, 'VM.destroy', s, snap);
      for (const v of vdis) await rpc(url, 'VDI.destroy', s, v);
    }
    // the SR's garbage collector merges in the background, as XCP-ng's does: wait for it
    await pool.control.coalesce();
    expect((await pool.control.vdiInfo(uuid)).chainLength).toBeLessThan(start + 3);
    expect(await rpc(url, 'VM.snapshot', s, vm, 'fits again')).toMatch(/^OpaqueRef:/);
    await pool.control.settings({ maxChainLength: 30 });
  });

  it('coalescing can be switched off and run through the control API', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    const [root] = await diskVdis(vm);
    const uuid = await rpc(url, 'VDI.get_uuid', s, root);
    await pool.control.settings({ autoCoalesce: false });
    const snap = await rpc(url, 'VM.snapshot', s, vm, 'no-coalesce');
    const before = (await pool.control.vdiInfo(uuid)).chainLength;
    const vdis = await diskVdis(snap);
    await rpc(url, 'VM.destroy', s, snap);
    for (const v of vdis) await rpc(url, 'VDI.destroy', s, v);
    expect((await pool.control.vdiInfo(uuid)).chainLength).toBe(before);
    expect(await pool.control.coalesce()).toBeGreaterThan(0);
    expect((await pool.control.vdiInfo(uuid)).chainLength).toBeLessThan(before);
    await pool.control.settings({ autoCoalesce: true });
  });
});

describe('chains as XCP-ng shows them', () => {
  const baseCopies = async () =>
    Object.entries<any>(await rpc(url, 'VDI.get_all_records', s)).filter(([, r]) => r.managed === false);

  it('vhd-parent points up the chain; an uncoalesced layer is a hidden base copy until it merges', async () => {
    // (clones share a layer with their source: earlier tests left such base copies, as XCP-ng does)
    const earlier = new Set((await baseCopies()).map(([ref]) => ref));
    const fresh = async () => (await baseCopies()).filter(([ref]) => !earlier.has(ref));
    const vm = await vmByName(url, s, 'prod-1');
    const [root] = await diskVdis(vm);
    const snap = await rpc(url, 'VM.snapshot', s, vm, 'chain-view');
    const [snapVdi] = await diskVdis(snap);
    const snapUuid = await rpc(url, 'VDI.get_uuid', s, snapVdi);
    expect((await rpc(url, 'VDI.get_sm_config', s, root))['vhd-parent']).toBe(snapUuid);
    expect(await fresh()).toEqual([]);

    // deleted, not coalesced yet: the disk now hangs off a hidden, unmanaged base copy
    await pool.control.settings({ coalesceDelayMs: 300 });
    await rpc(url, 'VM.destroy', s, snap);
    await rpc(url, 'VDI.destroy', s, snapVdi);
    const copies = await fresh();
    expect(copies).toHaveLength(1);
    const [copyRef, copy] = copies[0];
    expect(copy).toMatchObject({ name_label: 'base copy', managed: false, is_a_snapshot: false });
    expect((await rpc(url, 'VDI.get_sm_config', s, root))['vhd-parent']).toBe(copy.uuid);
    expect(await failureOf(url, 'VDI.destroy', s, copyRef)).toEqual(['VDI_NOT_MANAGED', copyRef]);

    // the background coalesce merges it: the base copy goes away (seen through events)
    let token = (await rpc(url, 'event.from', s, ['vdi'], '', 0)).token;
    for (let gone = false; !gone; ) {
      const batch = await rpc(url, 'event.from', s, ['vdi'], token, 5);
      token = batch.token;
      gone = batch.events.some((e: any) => e.operation === 'del' && e.ref === copyRef);
    }
    expect(await fresh()).toEqual([]);
    expect((await rpc(url, 'VDI.get_sm_config', s, root))['vhd-parent']).not.toBe(copy.uuid);
    await pool.control.settings({ coalesceDelayMs: 0 });
  });
});

describe('generic messages', () => {
  it('get_by_uuid, get_by_name_label, get_/set_<field>, add_to/remove_from maps, add/remove tags', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    const uuid = await rpc(url, 'VM.get_uuid', s, vm);
    expect(await rpc(url, 'VM.get_by_uuid', s, uuid)).toBe(vm);
    await rpc(url, 'VM.set_name_description', s, vm, 'described');
    expect(await rpc(url, 'VM.get_name_description', s, vm)).toBe('described');
    await rpc(url, 'VM.add_to_other_config', s, vm, 'xo:backup:job', 'j1');
    expect(await failureOf(url, 'VM.add_to_other_config', s, vm, 'xo:backup:job', 'j2')).toEqual([
      'MAP_DUPLICATE_KEY',
      'VM',
      'other_config',
      vm,
      'xo:backup:job',
    ]);
    await rpc(url, 'VM.remove_from_other_config', s, vm, 'xo:backup:job');
    await rpc(url, 'VM.remove_from_other_config', s, vm, 'absent-key');
    expect((await rpc(url, 'VM.get_other_config', s, vm))['xo:backup:job']).toBeUndefined();
    await rpc(url, 'VM.add_tags', s, vm, 'a');
    await rpc(url, 'VM.add_tags', s, vm, 'a');
    expect((await rpc<string[]>(url, 'VM.get_tags', s, vm)).filter((t) => t === 'a')).toHaveLength(1);
    await rpc(url, 'VM.remove_tags', s, vm, 'a');
    expect(await rpc(url, 'VM.get_tags', s, vm)).not.toContain('a');
    expect(await failureOf(url, 'VM.set_VCPUs_max', s, vm, 'many')).toEqual([
      'INVALID_VALUE',
      'VM.VCPUs_max',
      'many',
    ]);
  });

  it('VDI.create, VBD.create/destroy, VIF.create, VDI.snapshot/clone/destroy', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    const sr = (await rpc(url, 'pool.get_all_records', s, ...[]).then((p: any) => Object.values<any>(p)[0]))
      .default_SR;
    const vdi = await rpc(url, 'VDI.create', s, {
      SR: sr,
      virtual_size: 4 * 1024 * 1024,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
      name_label: 'extra',
    });
    expect(await failureOf(url, 'VDI.create', s, { SR: sr })).toEqual(['FIELD_TYPE_ERROR', 'virtual_size']);
    const vbd = await rpc(url, 'VBD.create', s, {
      VM: vm,
      VDI: vdi,
      userdevice: '5',
      bootable: false,
      mode: 'RW',
      type: 'Disk',
      empty: false,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
    expect(await rpc(url, 'VM.get_VBDs', s, vm)).toContain(vbd);
    expect(await rpc(url, 'VDI.get_VBDs', s, vdi)).toEqual([vbd]);
    const snap = await rpc(url, 'VDI.snapshot', s, vdi, {});
    expect(await rpc(url, 'VDI.get_snapshot_of', s, snap)).toBe(vdi);
    const clone = await rpc(url, 'VDI.clone', s, vdi, {});
    expect(await rpc(url, 'VDI.get_is_a_snapshot', s, clone)).toBe(false);
    await rpc(url, 'VBD.destroy', s, vbd);
    expect(await rpc(url, 'VM.get_VBDs', s, vm)).not.toContain(vbd);
    for (const v of [snap, clone, vdi]) await rpc(url, 'VDI.destroy', s, v);
    const net = (await rpc<string[]>(url, 'network.get_all', s))[0];
    const vif = await rpc(url, 'VIF.create', s, {
      device: '3',
      network: net,
      VM: vm,
      MAC: '',
      MTU: 1500,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
    expect(await rpc(url, 'VIF.get_MAC', s, vif)).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(await rpc(url, 'network.get_VIFs', s, net)).toContain(vif);
  });
});
