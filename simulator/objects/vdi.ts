import { randomUUID } from 'node:crypto';
import { fail } from '../errors';
import type { CallContext, MethodTable } from '../methods';
import type { PoolState } from '../pool';
import { NULL_REF } from '../rpc/values';
import { BLOCK_SIZE } from '../storage/blockstore';
import { refreshStorage } from './chain';
import { cloneRecord, type XRecord } from './db';
import { recordFromArgs } from './generic';
import { link, unlink } from './refs';
import { makeRecord } from './schema';

const uuidOf = (pool: PoolState, vdi: string): string => String(pool.get('VDI', vdi).uuid);

export function srFreeBytes(pool: PoolState, sr: string): number {
  if (pool.fullSrs.has(sr)) return 0;
  const r = pool.get('SR', sr);
  return Math.max(0, Number(r.physical_size) - Number(r.physical_utilisation));
}

/** SR_FULL [requested, maximum] when `requested` bytes do not fit in the SR. */
export function assertSpace(pool: PoolState, sr: string, requested: number): void {
  const free = srFreeBytes(pool, sr);
  if (requested > free || pool.fullSrs.has(sr)) fail('SR_FULL', String(requested), String(free));
}

/**
 * Brings the records up to date after a storage operation: chains, base copies, and the space of
 * the VDIs and SRs (`refreshStorage`: it looks only at what changed, whichever SR it is in).
 */
export function refreshSr(pool: PoolState, _sr: string): void {
  refreshStorage(pool);
}

export function refreshAllSrs(pool: PoolState): void {
  refreshStorage(pool);
}

export function createVdi(pool: PoolState, fields: XRecord): string {
  const sr = String(fields.SR);
  pool.get('SR', sr);
  const size = Number(fields.virtual_size);
  if (!Number.isInteger(size) || size < 0) fail('INVALID_VALUE', 'virtual_size', String(fields.virtual_size));
  assertSpace(pool, sr, size);
  const uuid = randomUUID();
  const ref = pool.db.insert(
    'VDI',
    makeRecord('VDI', { ...fields, uuid, location: uuid, VBDs: [], snapshots: [] }),
  );
  pool.store.createVdi(uuid);
  link(pool.db, 'SR', sr, 'VDIs', ref);
  refreshSr(pool, sr);
  return ref;
}

/** The chain check sm makes before a snapshot: SR_BACKEND_FAILURE_109 past the VHD chain limit. */
export function assertChainOk(pool: PoolState, vdi: string): void {
  if (pool.store.chainLength(uuidOf(pool, vdi)) >= pool.settings.maxChainLength) {
    fail('SR_BACKEND_FAILURE_109', '', 'The snapshot chain is too long', '');
  }
}

function copyRecord(pool: PoolState, vdi: string, changes: XRecord): XRecord {
  const src = pool.get('VDI', vdi);
  const uuid = randomUUID();
  return {
    ...cloneRecord({ ...src, current_operations: {}, allowed_operations: [] }),
    uuid,
    location: uuid,
    VBDs: [],
    snapshots: [],
    crash_dumps: [],
    ...changes,
  };
}

/** VDI.snapshot: a read-only point-in-time VDI sharing the source's blocks. */
export function snapshotVdi(pool: PoolState, vdi: string): string {
  const src = pool.get('VDI', vdi);
  const sr = String(src.SR);
  assertChainOk(pool, vdi);
  assertSpace(pool, sr, BLOCK_SIZE);
  const record = copyRecord(pool, vdi, { is_a_snapshot: true, snapshot_of: vdi, snapshot_time: new Date() });
  const ref = pool.db.insert('VDI', record);
  pool.store.snapshotVdi(String(src.uuid), String(record.uuid));
  link(pool.db, 'VDI', vdi, 'snapshots', ref);
  link(pool.db, 'SR', sr, 'VDIs', ref);
  refreshSr(pool, sr);
  return ref;
}

/** VDI.clone: a writable copy-on-write child. */
export function cloneVdi(pool: PoolState, vdi: string): string {
  const src = pool.get('VDI', vdi);
  const sr = String(src.SR);
  assertChainOk(pool, vdi);
  assertSpace(pool, sr, BLOCK_SIZE);
  const record = copyRecord(pool, vdi, {
    is_a_snapshot: false,
    snapshot_of: NULL_REF,
    snapshot_time: new Date(0),
  });
  const ref = pool.db.insert('VDI', record);
  pool.store.cloneVdi(String(src.uuid), String(record.uuid));
  link(pool.db, 'SR', sr, 'VDIs', ref);
  refreshSr(pool, sr);
  return ref;
}

/** VDI.copy: a full, independent copy in `sr` (blocks copied one by one). */
export async function copyVdi(pool: PoolState, vdi: string, sr: string): Promise<string> {
  const src = pool.get('VDI', vdi);
  const target = sr === NULL_REF ? String(src.SR) : sr;
  pool.get('SR', target);
  const srcUuid = String(src.uuid);
  const blocks = pool.store.allocatedBlocks(srcUuid);
  assertSpace(pool, target, blocks.length * BLOCK_SIZE);
  const record = copyRecord(pool, vdi, {
    SR: target,
    is_a_snapshot: false,
    snapshot_of: NULL_REF,
    snapshot_time: new Date(0),
    read_only: false,
  });
  const ref = pool.db.insert('VDI', record);
  pool.store.createVdi(String(record.uuid));
  for (const i of blocks)
    await pool.store.writeBlock(String(record.uuid), i, Buffer.from(await pool.store.readBlock(srcUuid, i)));
  link(pool.db, 'SR', target, 'VDIs', ref);
  refreshSr(pool, target);
  return ref;
}

export async function destroyVdi(pool: PoolState, vdi: string): Promise<void> {
  const r = pool.get('VDI', vdi);
  for (const vbd of r.VBDs as string[]) {
    if (pool.db.tryGet('VBD', vbd)?.currently_attached) fail('VDI_IN_USE', vdi, 'destroy');
  }
  if (!r.managed) fail('VDI_NOT_MANAGED', vdi);
  for (const vbd of r.VBDs as string[]) destroyVbdRecord(pool, vbd);
  unlink(pool.db, 'SR', String(r.SR), 'VDIs', vdi);
  unlink(pool.db, 'VDI', String(r.snapshot_of), 'snapshots', vdi);
  pool.db.remove('VDI', vdi);
  if (pool.store.hasVdi(String(r.uuid))) await releaseStorage(pool, String(r.uuid));
  refreshAllSrs(pool);
}

/**
 * Frees a VDI's layers in metadata time, as XAPI's VDI.destroy does, and leaves the merging of what
 * remains to the SR's garbage collector in the background (`coalesceSoon`).
 */
export async function releaseStorage(pool: PoolState, uuid: string): Promise<void> {
  pool.store.deleteVdi(uuid);
  coalesceSoon(pool);
}

/**
 * Starts the SR's garbage collector in the background, `coalesceDelayMs` from now (at once by
 * default), unless `autoCoalesce` is off. XCP-ng's SM runs it after a VDI is deleted and merges the
 * chain while the toolstack answers other calls; the base copies it leaves vanish when it is done.
 */
export function coalesceSoon(pool: PoolState): void {
  const { autoCoalesce, coalesceDelayMs } = pool.settings;
  if (!autoCoalesce) return;
  const run = () =>
    pool.store.coalesce().then(
      (merged) => merged > 0 && refreshAllSrs(pool),
      () => {},
    );
  if (coalesceDelayMs > 0) setTimeout(run, coalesceDelayMs).unref();
  else setImmediate(run);
}

export function destroyVbdRecord(pool: PoolState, vbd: string): void {
  const r = pool.db.tryGet('VBD', vbd);
  if (!r) return;
  unlink(pool.db, 'VM', String(r.VM), 'VBDs', vbd);
  unlink(pool.db, 'VDI', String(r.VDI), 'VBDs', vbd);
  pool.db.remove('VBD', vbd);
}

export function createVbd(pool: PoolState, fields: XRecord): string {
  const vm = String(fields.VM);
  pool.get('VM', vm);
  const empty = Boolean(fields.empty);
  const vdi = empty ? NULL_REF : String(fields.VDI);
  if (!empty) pool.get('VDI', vdi);
  const ref = pool.db.insert('VBD', makeRecord('VBD', { ...fields, VDI: vdi }));
  link(pool.db, 'VM', vm, 'VBDs', ref);
  if (!empty) link(pool.db, 'VDI', vdi, 'VBDs', ref);
  return ref;
}

export function createVif(pool: PoolState, fields: XRecord): string {
  const vm = String(fields.VM);
  const network = String(fields.network);
  pool.get('VM', vm);
  pool.get('network', network);
  const mac = fields.MAC ? String(fields.MAC) : randomMac();
  const ref = pool.db.insert(
    'VIF',
    makeRecord('VIF', { ...fields, MAC: mac, MAC_autogenerated: !fields.MAC }),
  );
  link(pool.db, 'VM', vm, 'VIFs', ref);
  link(pool.db, 'network', network, 'VIFs', ref);
  return ref;
}

export function destroyVif(pool: PoolState, vif: string): void {
  const r = pool.get('VIF', vif);
  unlink(pool.db, 'VM', String(r.VM), 'VIFs', vif);
  unlink(pool.db, 'network', String(r.network), 'VIFs', vif);
  pool.db.remove('VIF', vif);
}

export function randomMac(): string {
  const b = [0x02, ...Array.from({ length: 5 }, () => Math.floor(Math.random() * 256))];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** VDI.list_changed_blocks: base64 bitmap, one bit per 64 KiB, MSB first. */
export function changedBlocksBitmap(pool: PoolState, from: string, to: string): string {
  const a = pool.get('VDI', from);
  const b = pool.get('VDI', to);
  const size = Number(b.virtual_size);
  const bits = Math.ceil(size / 65536);
  const out = Buffer.alloc(Math.ceil(bits / 8));
  const per = BLOCK_SIZE / 65536;
  for (const block of pool.store.deltaBlocks(String(b.uuid), String(a.uuid))) {
    for (let k = block * per; k < Math.min(bits, (block + 1) * per); k++) out[k >> 3] |= 0x80 >> (k & 7);
  }
  return out.toString('base64');
}

const VDI_CREATE_MANDATORY = ['SR', 'virtual_size', 'type', 'sharable', 'read_only', 'other_config'];
const VBD_CREATE_MANDATORY = [
  'VM',
  'VDI',
  'userdevice',
  'bootable',
  'mode',
  'type',
  'empty',
  'other_config',
  'qos_algorithm_type',
  'qos_algorithm_params',
];
const VIF_CREATE_MANDATORY = [
  'device',
  'network',
  'VM',
  'MAC',
  'MTU',
  'other_config',
  'qos_algorithm_type',
  'qos_algorithm_params',
];

export function registerStorageMethods(table: MethodTable): void {
  const def = (
    name: string,
    params: string[],
    impl: (ctx: CallContext, ...a: any[]) => any,
    extra: { required?: number } = {},
  ) => table.set(name, { name, params, impl, async: true, ...extra });

  def('VDI.create', ['args'], (ctx, args) =>
    createVdi(ctx.pool, recordFromArgs('VDI', args, VDI_CREATE_MANDATORY)),
  );
  def('VDI.destroy', ['self'], async (ctx, vdi: string) => {
    await destroyVdi(ctx.pool, vdi);
    return '';
  });
  def('VDI.snapshot', ['vdi', 'driver_params'], (ctx, vdi: string) => snapshotVdi(ctx.pool, vdi), {
    required: 1,
  });
  def('VDI.clone', ['vdi', 'driver_params'], (ctx, vdi: string) => cloneVdi(ctx.pool, vdi), { required: 1 });
  def(
    'VDI.copy',
    ['vdi', 'sr', 'base_vdi', 'into_vdi'],
    (ctx, vdi: string, sr: string) => copyVdi(ctx.pool, vdi, sr),
    {
      required: 2,
    },
  );
  def('VDI.resize', ['vdi', 'size'], (ctx, vdi: string, size: unknown) => {
    const n = Number(size);
    const r = ctx.pool.get('VDI', vdi);
    if (!Number.isInteger(n) || n < Number(r.virtual_size))
      fail('VDI_TOO_SMALL', vdi, String(r.virtual_size));
    assertSpace(ctx.pool, String(r.SR), n - Number(r.virtual_size));
    ctx.pool.db.update('VDI', vdi, (x) => {
      x.virtual_size = n;
    });
    refreshSr(ctx.pool, String(r.SR));
    return '';
  });
  const cbt = (value: boolean) => (ctx: any, vdi: string) => {
    const r = ctx.pool.get('VDI', vdi);
    if (r.is_a_snapshot) fail('OPERATION_NOT_ALLOWED', `VDI is a snapshot: ${vdi}`);
    ctx.pool.db.update('VDI', vdi, (x: XRecord) => {
      x.cbt_enabled = value;
    });
    return '';
  };
  def('VDI.enable_cbt', ['self'], cbt(true));
  def('VDI.disable_cbt', ['self'], cbt(false));
  def('VDI.list_changed_blocks', ['vdi_from', 'vdi_to'], (ctx, a: string, b: string) =>
    changedBlocksBitmap(ctx.pool, a, b),
  );
  def('VDI.data_destroy', ['self'], async (ctx, vdi: string) => {
    const r = ctx.pool.get('VDI', vdi);
    if (!r.is_a_snapshot) fail('OPERATION_NOT_ALLOWED', `VDI is not a snapshot: ${vdi}`);
    if (!r.cbt_enabled) fail('VDI_NO_CBT_METADATA', vdi);
    for (const vbd of r.VBDs as string[])
      if (ctx.pool.db.tryGet('VBD', vbd)?.currently_attached) fail('VDI_IN_USE', vdi, 'data_destroy');
    if (ctx.pool.store.hasVdi(String(r.uuid))) await releaseStorage(ctx.pool, String(r.uuid));
    ctx.pool.db.update('VDI', vdi, (x) => {
      x.type = 'cbt_metadata';
    });
    refreshAllSrs(ctx.pool);
    return '';
  });
  def('VDI.get_nbd_info', ['self'], () => []);

  def('VBD.create', ['args'], (ctx, args) =>
    createVbd(ctx.pool, recordFromArgs('VBD', args, VBD_CREATE_MANDATORY)),
  );
  def('VBD.destroy', ['self'], (ctx, vbd: string) => {
    const r = ctx.pool.get('VBD', vbd);
    if (r.currently_attached) fail('OPERATION_NOT_ALLOWED', `VBD ${vbd} is currently attached`);
    destroyVbdRecord(ctx.pool, vbd);
    return '';
  });
  const plug = (value: boolean) => (ctx: any, vbd: string) => {
    const r = ctx.pool.get('VBD', vbd);
    if (r.currently_attached === value)
      fail(value ? 'DEVICE_ALREADY_ATTACHED' : 'DEVICE_ALREADY_DETACHED', vbd);
    ctx.pool.db.update('VBD', vbd, (x: XRecord) => {
      x.currently_attached = value;
    });
    return '';
  };
  def('VBD.plug', ['self'], plug(true));
  def('VBD.unplug', ['self'], plug(false));
  def('VBD.unplug_force', ['self'], plug(false));

  def('VIF.create', ['args'], (ctx, args) =>
    createVif(ctx.pool, recordFromArgs('VIF', args, VIF_CREATE_MANDATORY)),
  );
  def('VIF.destroy', ['self'], (ctx, vif: string) => {
    destroyVif(ctx.pool, vif);
    return '';
  });
  def('VIF.plug', ['self'], () => '');
  def('VIF.unplug', ['self'], () => '');

  def('network.create', ['args'], (ctx, args) =>
    ctx.pool.db.insert('network', makeRecord('network', recordFromArgs('network', args, ['other_config']))),
  );
  def('network.destroy', ['self'], (ctx, net: string) => {
    ctx.pool.get('network', net);
    ctx.pool.db.remove('network', net);
    return '';
  });
  def('SR.scan', ['sr'], (ctx, sr: string) => {
    refreshSr(ctx.pool, sr);
    return '';
  });
}
