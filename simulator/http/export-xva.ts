import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompressionKind, CompressOptions } from '../../formats/compression';
import { createXvaStream, type XvaInput, type XvaObject, xvaPieces } from '../../formats/xva';
import { XapiFailure } from '../errors';
import { succeedTask } from '../objects/tasks';
import { withVmOperation } from '../objects/vm';
import { rewriteForExport } from '../objects/xva-records';
import type { PoolState } from '../pool';
import { EPOCH, NULL_REF } from '../rpc/values';
import { zstdToSocket } from './compress-to-socket';
import { readAhead } from './readahead';
import { failTaskOrCancel } from './task-outcome';
import { beginTransfer, cancellable, endTransfer, failTransfer, pump, startDownload } from './transfer';
import { resolveObject } from './vdi-param';

/**
 * The compressor settings XAPI uses for `/export`: export.ml compresses with `Gzip.Default` or
 * `Zstd.Default` (xapi-project/xen-api, ocaml/xapi/export.ml), and ocaml/libs/zstd/zstd.ml runs
 * `/usr/bin/zstd` with no compression option for `Default` — zstd's default level 3 and one
 * compression thread (the comment beside its `Adaptive` variant says so); gzip likewise runs
 * `/bin/gzip` with its default level 6. Threads are pinned to 1 here, as the zstd of XCP-ng runs,
 * whatever a newer local zstd's default: a benchmark then measures the product against the
 * compression rate a real host gives.
 */
export const XAPI_COMPRESSION: Record<'gzip' | 'zstd', CompressOptions> = {
  gzip: { level: 6 },
  zstd: { level: 3, threads: 1 },
};

/** `use_compression`: true|gzip → gzip, zstd → zstd, anything else → none (export.ml). */
export function compressionOf(v: string | undefined): CompressionKind {
  if (v === 'true' || v === 'gzip') return 'gzip';
  if (v === 'zstd') return 'zstd';
  return 'none';
}

/** The objects of an XVA for `vm`, with `Ref:<n>` ids, and the disks to stream. */
export function buildExport(
  pool: PoolState,
  vm: string,
): { objects: XvaObject[]; disks: { id: string; vdi: string }[] } {
  const ids = new Map<string, string>();
  let n = 0;
  const id = (ref: string) => {
    if (!ids.has(ref)) ids.set(ref, `Ref:${String(n++).padStart(3, '0')}`);
    return ids.get(ref)!;
  };
  const vmRec = pool.get('VM', vm);
  id(vm);
  const vbds = (vmRec.VBDs as string[]).filter((v) => {
    const r = pool.get('VBD', v);
    return r.type === 'Disk' && !r.empty;
  });
  const vifs = vmRec.VIFs as string[];
  for (const v of vbds) id(v);
  for (const v of vifs) id(v);
  const networks = [...new Set(vifs.map((v) => String(pool.get('VIF', v).network)))];
  for (const net of networks) id(net);
  const vdis = vbds.map((v) => String(pool.get('VBD', v).VDI));
  for (const v of vdis) id(v);
  const srs = [...new Set(vdis.map((v) => String(pool.get('VDI', v).SR)))];
  for (const s of srs) id(s);
  const snap = (cls: string, ref: string, changes: Record<string, any> = {}): XvaObject => ({
    class: cls,
    id: ids.get(ref)!,
    snapshot: rewriteForExport(pool.get(cls, ref), ids, changes) as Record<string, any>,
  });
  const cleared = { current_operations: {}, allowed_operations: [] };
  const objects: XvaObject[] = [
    snap('VM', vm, {
      ...cleared,
      power_state: 'Halted',
      suspend_VDI: NULL_REF,
      is_a_snapshot: false,
      snapshot_of: NULL_REF,
      snapshots: [],
      snapshot_time: EPOCH,
      transportable_snapshot_id: '',
      parent: NULL_REF,
      children: [],
      crash_dumps: [],
      consoles: [],
      blobs: {},
      resident_on: NULL_REF,
      metrics: NULL_REF,
      guest_metrics: NULL_REF,
    }),
    ...vbds.map((v) => snap('VBD', v, { ...cleared, currently_attached: false, metrics: NULL_REF })),
    ...vifs.map((v) => snap('VIF', v, { ...cleared, currently_attached: false, metrics: NULL_REF })),
    ...networks.map((v) => snap('network', v, { ...cleared, PIFs: [] })),
    ...vdis.map((v) => snap('VDI', v, { ...cleared, crash_dumps: [] })),
    ...srs.map((v) => snap('SR', v, { ...cleared, PBDs: [] })),
  ];
  const disks = vdis.map((vdi) => ({ id: ids.get(vdi)!, vdi })).sort((a, b) => (a.id < b.id ? -1 : 1));
  return { objects, disks };
}

/** `GET /export?ref=|uuid=&use_compression=`: the VM (halted, or a snapshot) as an XVA. */
export async function handleExportXva(
  pool: PoolState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const t = beginTransfer(pool, req, res, 'VM export');
  if (!t) return;
  const leave = pool.stats.enter('export');
  try {
    const given = t.param('ref') ?? t.param('uuid');
    if (!given)
      return failTransfer(
        t,
        res,
        400,
        new XapiFailure('INTERNAL_ERROR', ['missing query parameter: ref or uuid']),
      );
    let vm: string;
    try {
      vm = resolveObject(pool, 'VM', given);
    } catch (e) {
      return failTransfer(t, res, 404, e);
    }
    const compression = compressionOf(t.param('use_compression'));
    await withVmOperation({ pool, session: t.session, taskRef: t.task }, vm, 'export', async () => {
      const { objects, disks } = buildExport(pool, vm);
      const input: XvaInput = {
        objects: objects as XvaObject[],
        disks: disks.map(({ id, vdi }) => {
          const r = pool.get('VDI', vdi);
          const uuid = String(r.uuid);
          return {
            ref: id,
            source: readAhead({
              size: Number(r.virtual_size),
              blocks: pool.store.allocatedBlocks(uuid),
              readBlock: (i: number) => pool.store.readBlock(uuid, i),
            }),
          };
        }),
      };
      startDownload(t, res, 'application/octet-stream', 'export.xva');
      // Faults that act on the bytes sent (a cut after N bytes, a throttle) need them to pass
      // through here; otherwise zstd writes to the client itself, as on a host.
      const faulted = pool.faults.cuts.length > 0 || pool.faults.bytesPerSecond > 0;
      if (compression === 'zstd' && !faulted) {
        const { level = 3, threads = 1 } = XAPI_COMPRESSION.zstd;
        await zstdToSocket(t, res, xvaPieces(input), { level, threads });
        return;
      }
      // uncompressed, the pieces go to the socket as they come (no stream buffering them together)
      const stream =
        compression === 'none'
          ? xvaPieces(input)
          : createXvaStream({ ...input, compression, compressOptions: XAPI_COMPRESSION[compression] });
      cancellable(t, () => res.destroy());
      try {
        await pump(t, res, stream);
      } finally {
        // (pump closes a generator itself)
        if ('destroy' in stream) stream.destroy();
      }
    });
    res.end();
    succeedTask(pool, t.task, '');
    endTransfer(t);
  } catch (e) {
    if (!res.headersSent) return failTransfer(t, res, 500, e);
    failTaskOrCancel(t, e);
    res.destroy();
    endTransfer(t);
  } finally {
    leave();
  }
}
