import type { IncomingMessage, ServerResponse } from 'node:http';
import { VHD_MAX_SIZE, vhdPieces } from '../../formats/vhd';
import { XapiFailure } from '../errors';
import { succeedTask } from '../objects/tasks';
import type { PoolState } from '../pool';
import { BLOCK_SIZE, ZERO_BLOCK } from '../storage/blockstore';
import { readAhead } from './readahead';
import { failTaskOrCancel } from './task-outcome';
import { beginTransfer, cancellable, endTransfer, failTransfer, pump, startDownload } from './transfer';
import { resolveObject } from './vdi-param';

/**
 * `GET /export_raw_vdi?vdi=&format=raw|vhd[&base=]`: the disk, or only the blocks changed since
 * `base` (the layers separating the two chains), streamed block by block.
 */
export async function handleExportRawVdi(
  pool: PoolState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const t = beginTransfer(pool, req, res, 'export_raw_vdi');
  if (!t) return;
  const leave = pool.stats.enter('export_raw_vdi');
  try {
    const vdiParam = t.param('vdi');
    if (!vdiParam)
      return failTransfer(t, res, 400, new XapiFailure('INTERNAL_ERROR', ['missing query parameter: vdi']));
    const format = t.param('format') ?? 'raw';
    if (format !== 'raw' && format !== 'vhd') {
      return failTransfer(t, res, 404, new XapiFailure('INTERNAL_ERROR', [`Unknown format ${format}`]));
    }
    let vdi: string;
    let base: string | undefined;
    try {
      vdi = resolveObject(pool, 'VDI', vdiParam);
      const b = t.param('base');
      base = b ? resolveObject(pool, 'VDI', b) : undefined;
    } catch (e) {
      return failTransfer(t, res, 404, e);
    }
    const record = pool.get('VDI', vdi);
    const size = Number(record.virtual_size);
    const uuid = String(record.uuid);
    if (format === 'vhd' && size > VHD_MAX_SIZE) {
      return failTransfer(t, res, 500, new XapiFailure('VDI_TOO_LARGE', [vdi, String(VHD_MAX_SIZE)]));
    }
    const baseRecord = base ? pool.get('VDI', base) : undefined;
    for (const [ref, r] of [
      [vdi, record],
      ...(base && baseRecord ? [[base, baseRecord] as const] : []),
    ] as const) {
      if (!pool.store.hasVdi(String(r.uuid))) {
        return failTransfer(t, res, 500, new XapiFailure('VDI_NOT_AVAILABLE', [ref]));
      }
    }
    const blocks = baseRecord
      ? pool.store.deltaBlocks(uuid, String(baseRecord.uuid))
      : pool.store.allocatedBlocks(uuid);
    const readBlock = (i: number) => pool.store.readBlock(uuid, i);
    cancellable(t, () => res.destroy());
    startDownload(
      t,
      res,
      format === 'vhd' ? 'application/vhd' : 'application/octet-stream',
      `${uuid}.${format}`,
    );
    let body: AsyncIterable<Buffer>;
    let total: number;
    if (format === 'vhd') {
      // the pieces as they come: a stream would join (copy) the bitmap and the block it holds
      body = vhdPieces(
        readAhead({ size, blocks, readBlock }),
        baseRecord
          ? {
              parent: {
                uuid: String(baseRecord.uuid),
                name: `${String(baseRecord.uuid)}.vhd`,
                timestamp: (baseRecord.snapshot_time as Date) ?? new Date(0),
              },
            }
          : {},
      );
      total = blocks.length * BLOCK_SIZE;
    } else {
      body = rawBlocks(size, blocks, readBlock);
      total = size;
    }
    await pump(t, res, body, total);
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

/** The whole virtual disk: listed blocks read, others zeros; the last block cut to the size. */
async function* rawBlocks(
  size: number,
  blocks: readonly number[],
  read: (i: number) => Promise<Buffer>,
): AsyncGenerator<Buffer> {
  const present = new Set(blocks);
  const n = Math.ceil(size / BLOCK_SIZE);
  for (let i = 0; i < n; i++) {
    const data = present.has(i) ? await read(i) : ZERO_BLOCK;
    const len = Math.min(BLOCK_SIZE, size - i * BLOCK_SIZE);
    yield len < BLOCK_SIZE ? data.subarray(0, len) : data;
  }
}
