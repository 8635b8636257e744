import type { IncomingMessage, ServerResponse } from 'node:http';
import { bitmapHas, bitmapIsFull, readVhdStream } from '../../formats/vhd';
import { XapiFailure } from '../errors';
import { succeedTask } from '../objects/tasks';
import { refreshSr } from '../objects/vdi';
import type { PoolState } from '../pool';
import { BLOCK_SIZE, ZERO_BLOCK } from '../storage/blockstore';
import { fixedChunks, requestBody } from './body';
import { failTaskOrCancel } from './task-outcome';
import { beginTransfer, cancellable, endTransfer, failTransfer, type Transfer } from './transfer';
import { resolveObject } from './vdi-param';

const SECTOR = 512;

/** Answers the empty-body probe XO sends before a streamed PUT: 200, nothing imported. */
export function isProbe(req: IncomingMessage): boolean {
  return req.headers['content-length'] === '0';
}

export function answerProbe(t: Transfer, res: ServerResponse): void {
  res.writeHead(200, 'OK', {
    connection: 'close',
    'task-id': t.task,
    'content-type': 'application/octet-stream',
    'content-length': 0,
  });
  res.end();
  succeedTask(t.pool, t.task, '');
  endTransfer(t);
}

/**
 * `PUT /import_raw_vdi?vdi=&format=raw|vhd`: writes into an existing VDI. A raw body replaces the
 * disk (zero blocks are skipped, the VDI being fresh or overwritten); a VHD body writes only the
 * blocks (and sectors) it holds, so a differencing VHD applies a delta. Result: the VDI ref.
 */
export async function handleImportRawVdi(
  pool: PoolState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const t = beginTransfer(pool, req, res, 'import_raw_vdi');
  if (!t) return;
  if (req.headers['transfer-encoding']) {
    return failTransfer(
      t,
      res,
      404,
      new XapiFailure('INTERNAL_ERROR', [`Cannot handle encoding: ${req.headers['transfer-encoding']}`]),
    );
  }
  if (isProbe(req)) return answerProbe(t, res);
  const leave = pool.stats.enter('import_raw_vdi');
  try {
    const vdiParam = t.param('vdi');
    if (!vdiParam) {
      return failTransfer(
        t,
        res,
        400,
        new XapiFailure('INTERNAL_ERROR', [
          'Importing a VHD directly into an SR not yet supported (missing vdi)',
        ]),
      );
    }
    const format = t.param('format') ?? 'raw';
    if (format !== 'raw' && format !== 'vhd') {
      return failTransfer(t, res, 404, new XapiFailure('INTERNAL_ERROR', [`Unknown format ${format}`]));
    }
    let vdi: string;
    try {
      vdi = resolveObject(pool, 'VDI', vdiParam);
    } catch (e) {
      return failTransfer(t, res, 404, e);
    }
    const record = pool.get('VDI', vdi);
    const uuid = String(record.uuid);
    const size = Number(record.virtual_size);
    cancellable(t, () => req.destroy());
    res.writeHead(200, 'OK', {
      connection: 'close',
      'task-id': t.task,
      'content-type': 'application/octet-stream',
    });
    res.flushHeaders();
    const body = requestBody(req);
    const sr = String(record.SR);
    // A full SR (control API) refuses the blocks a write would add, as sm does when space runs out.
    const assertRoom = (index: number) => {
      if (pool.fullSrs.has(sr) && !pool.store.isAllocated(uuid, index))
        throw new XapiFailure('SR_FULL', [String(BLOCK_SIZE), '0']);
    };
    if (format === 'raw') {
      let index = 0;
      for await (const chunk of fixedChunks(body, BLOCK_SIZE)) {
        if (index * BLOCK_SIZE >= size) throw new XapiFailure('VDI_IO_ERROR', ['Device I/O errors']);
        const data =
          chunk.length < BLOCK_SIZE ? Buffer.concat([chunk, ZERO_BLOCK.subarray(chunk.length)]) : chunk;
        if (pool.store.isAllocated(uuid, index) || !data.equals(ZERO_BLOCK)) {
          assertRoom(index);
          await pool.store.writeBlock(uuid, index, data);
        }
        index++;
      }
    } else {
      for await (const item of readVhdStream(body, `${uuid}.vhd`)) {
        if (item.type === 'header') {
          if (item.footer.currentSize > size)
            throw new XapiFailure('VDI_TOO_SMALL', [vdi, String(item.footer.currentSize)]);
          continue;
        }
        assertRoom(item.index);
        if (bitmapIsFull(item.bitmap)) await pool.store.writeBlock(uuid, item.index, item.data);
        else {
          const block = Buffer.from(await pool.store.readBlock(uuid, item.index));
          for (let s = 0; s < BLOCK_SIZE / SECTOR; s++) {
            if (bitmapHas(item.bitmap, s)) item.data.copy(block, s * SECTOR, s * SECTOR, (s + 1) * SECTOR);
          }
          await pool.store.writeBlock(uuid, item.index, block);
        }
      }
    }
    refreshSr(pool, String(record.SR));
    succeedTask(pool, t.task, vdi);
    res.end();
    endTransfer(t);
  } catch (e) {
    failTaskOrCancel(
      t,
      e instanceof XapiFailure
        ? e
        : new XapiFailure('VDI_IO_ERROR', ['Device I/O errors', (e as Error).message]),
    );
    res.destroy();
    endTransfer(t);
  } finally {
    leave();
  }
}
