import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fail } from '../errors';
import type { CallContext, MethodTable } from '../methods';
import type { PoolState } from '../pool';
import { NULL_REF, type XValue } from '../rpc/values';
import { BLOCK_SIZE } from '../storage/blockstore';
import { writeMemoryImage } from '../storage/content';
import { cloneRecord, type XRecord } from './db';
import { recordFromArgs } from './generic';
import { link, unlink } from './refs';
import { makeRecord } from './schema';
import {
  assertChainOk,
  assertSpace,
  cloneVdi,
  copyVdi,
  createVbd,
  createVdi,
  createVif,
  destroyVbdRecord,
  destroyVdi,
  destroyVif,
  refreshSr,
  snapshotVdi,
} from './vdi';
import { allowedOperations, checkVmOperation } from './vm-checks';

export function refreshAllowedOperations(pool: PoolState, vm: string): void {
  if (!pool.db.has('VM', vm)) return;
  const r = pool.get('VM', vm);
  const ops = allowedOperations(vm, r);
  if (JSON.stringify(ops) !== JSON.stringify(r.allowed_operations)) {
    pool.db.update('VM', vm, (x) => {
      x.allowed_operations = ops;
    });
  }
}

/**
 * Runs `op` on a VM as XAPI does: validity check in XAPI's order, `current_operations[task] = op`
 * while it runs (other callers then see OTHER_OPERATION_IN_PROGRESS), cleared at the end.
 */
export async function withVmOperation<T>(
  ctx: CallContext,
  vm: string,
  op: string,
  body: () => Promise<T> | T,
): Promise<T> {
  const { pool } = ctx;
  const err = checkVmOperation(vm, pool.get('VM', vm), op);
  if (err) throw err;
  pool.db.update('VM', vm, (r) => {
    r.current_operations = { ...(r.current_operations as object), [ctx.taskRef]: op };
  });
  refreshAllowedOperations(pool, vm);
  const leave = op === 'snapshot' || op === 'checkpoint' ? pool.stats.enter('snapshot') : () => {};
  try {
    const delay = pool.faults.delays.get(`VM.${op}`);
    if (delay) await sleep(delay);
    return await body();
  } finally {
    leave();
    if (pool.db.has('VM', vm)) {
      pool.db.update('VM', vm, (r) => {
        const ops = { ...(r.current_operations as Record<string, string>) };
        delete ops[ctx.taskRef];
        r.current_operations = ops;
      });
      refreshAllowedOperations(pool, vm);
    }
  }
}

function diskVbds(pool: PoolState, vm: string): { vbd: string; record: XRecord }[] {
  return (pool.get('VM', vm).VBDs as string[]).map((vbd) => ({ vbd, record: pool.get('VBD', vbd) }));
}

function copyVmRecord(pool: PoolState, vm: string, changes: XRecord): string {
  const src = pool.get('VM', vm);
  const record: XRecord = {
    ...cloneRecord(src),
    uuid: randomUUID(),
    VBDs: [],
    VIFs: [],
    snapshots: [],
    children: [],
    consoles: [],
    crash_dumps: [],
    current_operations: {},
    allowed_operations: [],
    resident_on: NULL_REF,
    domid: -1,
    metrics: NULL_REF,
    guest_metrics: NULL_REF,
    suspend_VDI: NULL_REF,
    ...changes,
  };
  return pool.db.insert('VM', record);
}

type DiskMode = { kind: 'snapshot'; ignore: Set<string> } | { kind: 'clone' } | { kind: 'copy'; sr: string };

/** Re-creates the VBDs (with new VDIs as `mode` says) and VIFs of `src` on `dst`. */
async function copyDevices(pool: PoolState, src: string, dst: string, mode: DiskMode): Promise<void> {
  for (const { record } of diskVbds(pool, src)) {
    let vdi = String(record.VDI);
    if (record.type === 'Disk' && !record.empty) {
      if (mode.kind === 'snapshot' && mode.ignore.has(vdi)) continue;
      if (mode.kind === 'snapshot') vdi = snapshotVdi(pool, vdi);
      else if (mode.kind === 'clone') vdi = cloneVdi(pool, vdi);
      else vdi = await copyVdi(pool, vdi, mode.sr);
    }
    createVbd(pool, {
      ...cloneRecord(record),
      uuid: randomUUID(),
      VM: dst,
      VDI: vdi,
      currently_attached: false,
      device: record.device,
      current_operations: {},
      allowed_operations: [],
      other_config: { ...(record.other_config as object), ...(record.type === 'Disk' ? { owner: '' } : {}) },
    });
  }
  for (const vif of pool.get('VM', src).VIFs as string[]) {
    const r = pool.get('VIF', vif);
    createVif(pool, { ...cloneRecord(r), uuid: randomUUID(), VM: dst, currently_attached: false });
  }
}

function vdisToSnapshot(pool: PoolState, vm: string, ignore: Set<string>): string[] {
  return diskVbds(pool, vm)
    .filter(({ record }) => record.type === 'Disk' && !record.empty && !ignore.has(String(record.VDI)))
    .map(({ record }) => String(record.VDI));
}

/** The checks sm makes before snapshotting: chain length, then space for each new leaf. */
function assertCanSnapshotDisks(pool: PoolState, vdis: string[]): void {
  for (const v of vdis) assertChainOk(pool, v);
  for (const v of vdis) assertSpace(pool, String(pool.get('VDI', v).SR), BLOCK_SIZE);
}

export async function snapshotVm(
  ctx: CallContext,
  vm: string,
  name: string,
  ignoreVdis: string[],
  op = 'snapshot',
): Promise<string> {
  const { pool } = ctx;
  return withVmOperation(ctx, vm, op, async () => {
    {
      const ignore = new Set(ignoreVdis);
      assertCanSnapshotDisks(pool, vdisToSnapshot(pool, vm, ignore));
      const src = pool.get('VM', vm);
      const checkpoint = op === 'checkpoint';
      // A suspended VM's snapshot keeps its memory: the suspend VDI is cloned with the disks.
      const suspendedImage =
        src.power_state === 'Suspended' && src.suspend_VDI !== NULL_REF ? String(src.suspend_VDI) : undefined;
      const withMemory = (checkpoint && src.power_state === 'Running') || suspendedImage !== undefined;
      const snap = copyVmRecord(pool, vm, {
        name_label: name,
        is_a_snapshot: true,
        is_a_template: true,
        snapshot_of: vm,
        snapshot_time: new Date(),
        power_state: withMemory ? 'Suspended' : 'Halted',
        blocked_operations: {},
        snapshot_info: {
          'power-state-at-snapshot': String(src.power_state),
          'disk-snapshot-type': 'crash_consistent',
        },
        parent: src.parent,
        children: [vm],
        transportable_snapshot_id: '',
      });
      await copyDevices(pool, vm, snap, { kind: 'snapshot', ignore });
      if (withMemory) {
        const suspend = suspendedImage ? cloneVdi(pool, suspendedImage) : await createMemoryImage(pool, snap);
        pool.db.update('VM', snap, (r) => {
          r.suspend_VDI = suspend;
        });
      }
      link(pool.db, 'VM', vm, 'snapshots', snap);
      pool.db.update('VM', vm, (r) => {
        r.parent = snap;
      });
      refreshAllowedOperations(pool, snap);
      return snap;
    }
  });
}

/** A `suspend` VDI holding the VM's memory (seeded bytes), in the suspend SR. */
async function createMemoryImage(pool: PoolState, vm: string): Promise<string> {
  const r = pool.get('VM', vm);
  const size = Math.ceil(Number(r.memory_static_max) / BLOCK_SIZE) * BLOCK_SIZE;
  const poolRec = pool.get('pool', pool.poolRef);
  const firstDisk = diskVbds(pool, vm).find((d) => d.record.type === 'Disk' && !d.record.empty);
  const sr =
    r.suspend_SR !== NULL_REF
      ? String(r.suspend_SR)
      : poolRec.suspend_image_SR !== NULL_REF
        ? String(poolRec.suspend_image_SR)
        : firstDisk
          ? String(pool.get('VDI', String(firstDisk.record.VDI)).SR)
          : String(poolRec.default_SR);
  const vdi = createVdi(pool, {
    SR: sr,
    virtual_size: size,
    type: 'suspend',
    name_label: `Suspend image for ${String(r.name_label)}`,
    sharable: false,
    read_only: false,
    other_config: {},
  });
  const uuid = String(pool.get('VDI', vdi).uuid);
  await writeMemoryImage(pool.store, uuid, size, String(r.uuid));
  refreshSr(pool, sr);
  return vdi;
}

function setPowerState(
  pool: PoolState,
  vm: string,
  state: 'Halted' | 'Running' | 'Paused' | 'Suspended',
): void {
  const running = state === 'Running' || state === 'Paused';
  const wasRunning = pool.get('VM', vm).resident_on !== NULL_REF;
  pool.db.update('VM', vm, (r) => {
    r.power_state = state;
    r.resident_on = running ? pool.hostRef : NULL_REF;
    r.domid = running ? Math.floor(Math.random() * 1000) + 1 : -1;
  });
  if (running && !wasRunning) link(pool.db, 'host', pool.hostRef, 'resident_VMs', vm);
  if (!running && wasRunning) unlink(pool.db, 'host', pool.hostRef, 'resident_VMs', vm);
  for (const vbd of pool.get('VM', vm).VBDs as string[]) {
    pool.db.update('VBD', vbd, (r) => {
      r.currently_attached = running && !r.empty;
    });
  }
  for (const vif of pool.get('VM', vm).VIFs as string[]) {
    pool.db.update('VIF', vif, (r) => {
      r.currently_attached = running;
    });
  }
  if (running && pool.get('VM', vm).guest_metrics === NULL_REF) {
    const report = () => {
      const r = pool.db.tryGet('VM', vm);
      if (!r || r.guest_metrics !== NULL_REF || r.power_state !== 'Running') return;
      const gm = pool.db.insert('VM_guest_metrics', makeRecord('VM_guest_metrics'));
      pool.db.update('VM', vm, (x) => {
        x.guest_metrics = gm;
      });
    };
    const agent = (pool.get('VM', vm).other_config as Record<string, string>)[GUEST_AGENT_KEY];
    if (agent === 'none') return; // no PV drivers: never reports
    if (pool.settings.guestAgentDelayMs > 0) setTimeout(report, pool.settings.guestAgentDelayMs).unref();
    else report();
  }
}

/** other_config key: `none` makes a VM that never reports guest metrics (no guest agent). */
export const GUEST_AGENT_KEY = 'sim:guest-agent';

export async function destroyVm(pool: PoolState, vm: string): Promise<void> {
  const r = pool.get('VM', vm);
  if ((r.other_config as Record<string, string>).default_template === 'true')
    fail('VM_CANNOT_DELETE_DEFAULT_TEMPLATE');
  for (const vbd of [...(r.VBDs as string[])]) destroyVbdRecord(pool, vbd);
  for (const vif of [...(r.VIFs as string[])]) destroyVif(pool, vif);
  if (r.snapshot_of !== NULL_REF) unlink(pool.db, 'VM', String(r.snapshot_of), 'snapshots', vm);
  for (const cls of ['VM_metrics', 'VM_guest_metrics']) {
    const m = String(r[cls === 'VM_metrics' ? 'metrics' : 'guest_metrics']);
    if (pool.db.has(cls, m)) pool.db.remove(cls, m);
  }
  for (const [other, o] of pool.db.all('VM')) {
    if (o.parent === vm) {
      pool.db.update('VM', other, (x) => {
        x.parent = r.parent;
      });
    }
  }
  pool.db.remove('VM', vm);
}

const VM_CREATE_MANDATORY = [
  'memory_static_max',
  'memory_dynamic_max',
  'memory_dynamic_min',
  'memory_static_min',
];

export function registerVmMethods(table: MethodTable): void {
  const def = (
    name: string,
    params: string[],
    impl: (ctx: CallContext, ...a: any[]) => XValue | Promise<XValue>,
    extra: { required?: number; removed?: boolean; async?: boolean } = {},
  ) => table.set(`VM.${name}`, { name: `VM.${name}`, params, impl, async: true, ...extra });

  def(
    'snapshot',
    ['vm', 'new_name', 'ignore_vdis'],
    (ctx, vm: string, name: string, ignore: unknown) =>
      snapshotVm(ctx, vm, String(name), Array.isArray(ignore) ? ignore.map(String) : []),
    { required: 2 },
  );
  def('checkpoint', ['vm', 'new_name'], (ctx, vm: string, name: string) =>
    snapshotVm(ctx, vm, String(name), [], 'checkpoint'),
  );
  def('snapshot_with_quiesce', ['vm', 'new_name'], () => fail('MESSAGE_REMOVED'), { removed: true });
  def('clone', ['vm', 'new_name'], (ctx, vm: string, name: string) =>
    withVmOperation(ctx, vm, 'clone', async () => {
      const src = ctx.pool.get('VM', vm);
      const vdis = vdisToSnapshot(ctx.pool, vm, new Set());
      assertCanSnapshotDisks(ctx.pool, vdis);
      const copy = copyVmRecord(ctx.pool, vm, {
        name_label: String(name),
        is_a_snapshot: false,
        snapshot_of: NULL_REF,
        snapshot_time: new Date(0),
        snapshot_info: {},
        is_a_template: src.is_a_template,
        power_state: 'Halted',
        parent: NULL_REF,
      });
      await copyDevices(ctx.pool, vm, copy, { kind: 'clone' });
      // Only a suspended snapshot (a checkpoint) can be cloned while suspended: the clone is a
      // suspended VM on a clone of its memory, resumed where the checkpoint was.
      if (src.power_state === 'Suspended' && src.suspend_VDI !== NULL_REF) {
        const memory = cloneVdi(ctx.pool, String(src.suspend_VDI));
        ctx.pool.db.update('VM', copy, (r) => {
          r.power_state = 'Suspended';
          r.suspend_VDI = memory;
        });
      }
      refreshAllowedOperations(ctx.pool, copy);
      return copy;
    }),
  );
  def('copy', ['vm', 'new_name', 'sr'], (ctx, vm: string, name: string, sr: string) =>
    withVmOperation(ctx, vm, 'copy', async () => {
      if (sr !== NULL_REF) ctx.pool.get('SR', sr);
      const src = ctx.pool.get('VM', vm);
      const copy = copyVmRecord(ctx.pool, vm, {
        name_label: String(name),
        is_a_snapshot: false,
        snapshot_of: NULL_REF,
        snapshot_time: new Date(0),
        snapshot_info: {},
        is_a_template: src.is_a_template,
        power_state: 'Halted',
        parent: NULL_REF,
      });
      await copyDevices(ctx.pool, vm, copy, { kind: 'copy', sr });
      refreshAllowedOperations(ctx.pool, copy);
      return copy;
    }),
  );
  def('destroy', ['self'], async (ctx, vm: string) => {
    await withVmOperation(ctx, vm, 'destroy', () => undefined);
    await destroyVm(ctx.pool, vm);
    return '';
  });
  def('create', ['args'], (ctx, args) => {
    const fields = recordFromArgs('VM', args, VM_CREATE_MANDATORY);
    const metrics = ctx.pool.db.insert('VM_metrics', makeRecord('VM_metrics'));
    // power_state and suspend_VDI are constructor fields: a VM created with a suspend VDI and
    // power_state Suspended is a suspended VM (how a memory backup is restored).
    const suspended =
      String(fields.power_state).toLowerCase() === 'suspended' &&
      fields.suspend_VDI !== undefined &&
      fields.suspend_VDI !== NULL_REF &&
      ctx.pool.db.has('VDI', String(fields.suspend_VDI));
    const vm = ctx.pool.db.insert(
      'VM',
      makeRecord('VM', {
        ...fields,
        power_state: suspended ? 'Suspended' : 'Halted',
        suspend_VDI: suspended ? fields.suspend_VDI : NULL_REF,
        metrics,
      }),
    );
    refreshAllowedOperations(ctx.pool, vm);
    return vm;
  });
  const power =
    (op: string, to: (r: XRecord, args: unknown[]) => 'Halted' | 'Running' | 'Paused' | 'Suspended') =>
    async (ctx: CallContext, vm: string, ...args: unknown[]) => {
      await withVmOperation(ctx, vm, op, async () => {
        const target = to(ctx.pool.get('VM', vm), args);
        if (op === 'suspend') {
          const suspend = await createMemoryImage(ctx.pool, vm);
          ctx.pool.db.update('VM', vm, (r) => {
            r.suspend_VDI = suspend;
          });
        }
        setPowerState(ctx.pool, vm, target);
        if (
          op === 'resume' ||
          ((op === 'hard_shutdown' || op === 'shutdown') && ctx.pool.get('VM', vm).suspend_VDI !== NULL_REF)
        ) {
          const suspend = String(ctx.pool.get('VM', vm).suspend_VDI);
          ctx.pool.db.update('VM', vm, (r) => {
            r.suspend_VDI = NULL_REF;
          });
          if (ctx.pool.db.has('VDI', suspend)) {
            await destroyVdi(ctx.pool, suspend);
          }
        }
      });
      return '';
    };
  def(
    'start',
    ['vm', 'start_paused', 'force'],
    power('start', (_r, a) => (a[0] === true ? 'Paused' : 'Running')),
  );
  def(
    'start_on',
    ['vm', 'host', 'start_paused', 'force'],
    power('start_on', (_r, a) => (a[1] === true ? 'Paused' : 'Running')),
  );
  def(
    'clean_shutdown',
    ['vm'],
    power('clean_shutdown', () => 'Halted'),
  );
  def(
    'shutdown',
    ['vm'],
    power('shutdown', () => 'Halted'),
  );
  def(
    'hard_shutdown',
    ['vm'],
    power('hard_shutdown', () => 'Halted'),
  );
  def(
    'clean_reboot',
    ['vm'],
    power('clean_reboot', () => 'Running'),
  );
  def(
    'hard_reboot',
    ['vm'],
    power('hard_reboot', () => 'Running'),
  );
  def(
    'suspend',
    ['vm'],
    power('suspend', () => 'Suspended'),
  );
  def(
    'resume',
    ['vm', 'start_paused', 'force'],
    power('resume', (_r, a) => (a[0] === true ? 'Paused' : 'Running')),
  );
  def(
    'pause',
    ['vm'],
    power('pause', () => 'Paused'),
  );
  def(
    'unpause',
    ['vm'],
    power('unpause', () => 'Running'),
  );
  def(
    'set_is_a_template',
    ['self', 'value'],
    async (ctx, vm: string, value: unknown) => {
      if (typeof value !== 'boolean') fail('INVALID_VALUE', 'value', String(value));
      if (value) await withVmOperation(ctx, vm, 'make_into_template', () => undefined);
      ctx.pool.db.update('VM', vm, (r) => {
        r.is_a_template = value;
        if (value) r.ha_always_run = false;
      });
      refreshAllowedOperations(ctx.pool, vm);
      return '';
    },
    { async: true },
  );
  def('update_allowed_operations', ['self'], (ctx, vm: string) => {
    ctx.pool.get('VM', vm);
    refreshAllowedOperations(ctx.pool, vm);
    return '';
  });
  def('assert_can_boot_here', ['self', 'host'], (ctx, vm: string, host: string) => {
    ctx.pool.get('VM', vm);
    ctx.pool.get('host', host);
    return '';
  });
  def(
    'set_memory_limits',
    ['self', 'static_min', 'static_max', 'dynamic_min', 'dynamic_max'],
    (ctx, vm: string, smin, smax, dmin, dmax) => {
      const [a, b, c, d] = [smin, smax, dmin, dmax].map(Number);
      if (!(a <= c && c <= d && d <= b))
        fail(
          'MEMORY_CONSTRAINT_VIOLATION',
          'Memory limits must satisfy: static_min <= dynamic_min <= dynamic_max <= static_max',
        );
      ctx.pool.db.update('VM', vm, (r) => {
        r.memory_static_min = a;
        r.memory_static_max = b;
        r.memory_dynamic_min = c;
        r.memory_dynamic_max = d;
      });
      return '';
    },
  );
  def(
    'set_ha_restart_priority',
    ['self', 'value'],
    (ctx, vm: string, value: unknown) => {
      if (!['', 'restart', 'best-effort'].includes(String(value)))
        fail('INVALID_VALUE', 'ha_restart_priority', String(value));
      ctx.pool.db.update('VM', vm, (r) => {
        r.ha_restart_priority = String(value);
      });
      return '';
    },
    { async: false },
  );
}
