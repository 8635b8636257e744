import type { IncomingMessage, ServerResponse } from 'node:http';
import { readXva } from '../../formats/xva';
import { XapiFailure } from '../errors';
import type { XRecord } from '../objects/db';
import { makeRecord } from '../objects/schema';
import { succeedTask } from '../objects/tasks';
import { createVbd, createVdi, createVif, destroyVdi, refreshSr } from '../objects/vdi';
import { destroyVm, refreshAllowedOperations } from '../objects/vm';
import { recordFromOva } from '../objects/xva-records';
import type { PoolState } from '../pool';
import { NULL_REF } from '../rpc/values';
import { requestBody } from './body';
import { answerProbe, isProbe } from './import-raw';
import { failTaskOrCancel } from './task-outcome';
import { beginTransfer, cancellable, endTransfer, failTransfer } from './transfer';
import { resolveObject } from './vdi-param';

/** `PUT /import?sr_id=|sr_uuid=`: an XVA (plain, gzip or zstd) becomes a new halted VM; result [vm]. */
export async function handleImportXva(
  pool: PoolState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const t = beginTransfer(pool, req, res, 'VM import');
  if (!t) return;
  if (req.headers['transfer-encoding']) {
    return failTransfer(t, res, 403, new XapiFailure('IMPORT_ERROR_CANNOT_HANDLE_CHUNKED'));
  }
  if (isProbe(req)) return answerProbe(t, res);
  let sr: string;
  try {
    const given = t.param('sr_id') ?? t.param('sr_uuid');
    if (given) sr = resolveObject(pool, 'SR', given);
    else {
      sr = String(pool.get('pool', pool.poolRef).default_SR);
      if (!pool.db.has('SR', sr)) throw new XapiFailure('DEFAULT_SR_NOT_FOUND', [sr]);
    }
  } catch (e) {
    return failTransfer(t, res, 404, e);
  }
  const leave = pool.stats.enter('import');
  const created: { vm?: string; vdis: string[] } = { vdis: [] };
  try {
    cancellable(t, () => req.destroy());
    res.writeHead(200, 'OK', {
      connection: 'close',
      'task-id': t.task,
      'content-type': 'application/octet-stream',
    });
    res.flushHeaders();
    const vdiUuids = new Map<string, { uuid: string; size: number }>();
    for await (const item of readXva(requestBody(req))) {
      if (item.type === 'header') {
        createObjects(pool, sr, t.task, item.objects, created, vdiUuids);
        continue;
      }
      const target = vdiUuids.get(item.ref);
      if (!target) throw new XapiFailure('IMPORT_ERROR_FAILED_TO_FIND_OBJECT', [item.ref]);
      if (item.offset + item.data.length > target.size) {
        throw new XapiFailure('IMPORT_ERROR', [
          `chunk ${item.index} of ${item.ref} goes past the disk's size`,
        ]);
      }
      if (!item.data.every((b) => b === 0)) await pool.store.writeBytes(target.uuid, item.offset, item.data);
    }
    if (!created.vm) throw new XapiFailure('IMPORT_ERROR', ['no VM in the archive']);
    const vm = created.vm;
    pool.db.update('VM', vm, (r) => {
      r.current_operations = {};
    });
    refreshAllowedOperations(pool, vm);
    refreshSr(pool, sr);
    succeedTask(pool, t.task, [vm]);
    res.end();
    endTransfer(t);
  } catch (e) {
    if (created.vm && pool.db.has('VM', created.vm)) await destroyVm(pool, created.vm).catch(() => {});
    for (const v of created.vdis) if (pool.db.has('VDI', v)) await destroyVdi(pool, v).catch(() => {});
    const err = e instanceof XapiFailure ? e : new XapiFailure('IMPORT_ERROR', [(e as Error).message]);
    failTaskOrCancel(t, err);
    res.destroy();
    endTransfer(t);
  } finally {
    leave();
  }
}

function createObjects(
  pool: PoolState,
  sr: string,
  task: string,
  objects: { class: string; id: string; snapshot: Record<string, unknown> }[],
  created: { vm?: string; vdis: string[] },
  vdiUuids: Map<string, { uuid: string; size: number }>,
): void {
  const refs = new Map<string, string>();
  const vms = objects.filter((o) => o.class === 'VM');
  if (vms.length !== 1)
    throw new XapiFailure('IMPORT_ERROR', [`expected one VM in ova.xml, found ${vms.length}`]);
  for (const o of objects.filter((x) => x.class === 'VDI')) {
    const rec = recordFromOva('VDI', o.snapshot, refs);
    const size = Math.ceil(Number(rec.virtual_size) / 1048576) * 1048576;
    const vdi = createVdi(pool, {
      ...pick(rec, [
        'name_label',
        'name_description',
        'type',
        'sharable',
        'read_only',
        'other_config',
        'xenstore_data',
        'sm_config',
        'tags',
      ]),
      SR: sr,
      virtual_size: size,
    });
    created.vdis.push(vdi);
    refs.set(o.id, vdi);
    vdiUuids.set(o.id, { uuid: String(pool.get('VDI', vdi).uuid), size });
  }
  for (const o of objects.filter((x) => x.class === 'network')) {
    const wanted = recordFromOva('network', o.snapshot, refs);
    const match =
      pool.db.all('network').find(([, r]) => r.name_label === wanted.name_label) ??
      pool.db.all('network').find(([, r]) => r.bridge === wanted.bridge) ??
      pool.db.all('network')[0];
    if (match) refs.set(o.id, match[0]);
  }
  const vmRec = recordFromOva('VM', vms[0].snapshot, refs);
  const vm = pool.db.insert(
    'VM',
    makeRecord('VM', {
      ...vmRec,
      power_state: 'Halted',
      VBDs: [],
      VIFs: [],
      snapshots: [],
      children: [],
      resident_on: NULL_REF,
      suspend_VDI: NULL_REF,
      metrics: pool.db.insert('VM_metrics', makeRecord('VM_metrics')),
      guest_metrics: NULL_REF,
      current_operations: { [task]: 'import' },
      allowed_operations: [],
    }),
  );
  created.vm = vm;
  refs.set(vms[0].id, vm);
  for (const o of objects.filter((x) => x.class === 'VBD')) {
    const rec = recordFromOva('VBD', o.snapshot, refs);
    if (rec.VDI === NULL_REF && !rec.empty) continue;
    createVbd(pool, {
      ...rec,
      VM: vm,
      currently_attached: false,
      current_operations: {},
      allowed_operations: [],
    });
  }
  for (const o of objects.filter((x) => x.class === 'VIF')) {
    const rec = recordFromOva('VIF', o.snapshot, refs);
    if (rec.network === NULL_REF) continue;
    createVif(pool, {
      ...rec,
      VM: vm,
      currently_attached: false,
      current_operations: {},
      allowed_operations: [],
    });
  }
}

function pick(r: XRecord, keys: string[]): XRecord {
  return Object.fromEntries(keys.filter((k) => r[k] !== undefined).map((k) => [k, r[k]]));
}
