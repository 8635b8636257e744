import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { toErrorDescription } from '../errors';
import { readBody } from '../http/util';
import { refreshAllSrs } from '../objects/vdi';
import type { PoolState } from '../pool';
import { NULL_REF, toJsonValue } from '../rpc/values';
import { BLOCK_SIZE, ZERO_BLOCK } from '../storage/blockstore';
import { writeRandomBlocks } from '../storage/content';

export const CONTROL_PREFIX = '/_sim/';

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function jsonBody(req: IncomingMessage): Promise<any> {
  const raw = (await readBody(req)).toString('utf8');
  if (raw === '') return {};
  try {
    return JSON.parse(raw);
  } catch {
    throw new ControlError(400, `request body is not JSON: ${raw.slice(0, 80)}`);
  }
}

function vdiByUuid(pool: PoolState, uuid: string): { ref: string; size: number } {
  for (const [ref, r] of pool.db.all('VDI'))
    if (r.uuid === uuid) return { ref, size: Number(r.virtual_size) };
  throw new ControlError(404, `no VDI with uuid ${uuid}`);
}

const int = (v: unknown, name: string, min = 0): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new ControlError(400, `${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
};

/** The control API beside XAPI (see simulator/README.md). */
export async function handleControl(
  pool: PoolState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://sim');
  const parts = url.pathname.slice(CONTROL_PREFIX.length).split('/').filter(Boolean);
  const route = `${req.method} ${parts.map((p, i) => (i === 1 && (parts[0] === 'vdi' || parts[0] === 'sr') ? ':id' : p)).join('/')}`;
  try {
    switch (route) {
      case 'POST faults': {
        const b = await jsonBody(req);
        if (typeof b.method !== 'string' || typeof b.code !== 'string')
          throw new ControlError(400, 'method and code are required strings');
        pool.faults.injectRpc({
          method: b.method,
          code: b.code,
          params: Array.isArray(b.params) ? b.params.map(String) : [],
          nth: b.nth === undefined ? 1 : int(b.nth, 'nth', 1),
          times: b.times === undefined ? 1 : int(b.times, 'times', 1),
        });
        return json(res, 200, { ok: true });
      }
      case 'DELETE faults':
        pool.faults.clear();
        pool.fullSrs.clear();
        return json(res, 200, { ok: true });
      case 'POST delay': {
        const b = await jsonBody(req);
        if (typeof b.method !== 'string') throw new ControlError(400, 'method is required');
        const ms = int(b.ms, 'ms');
        if (ms === 0) pool.faults.delays.delete(b.method);
        else pool.faults.delays.set(b.method, ms);
        return json(res, 200, { ok: true });
      }
      case 'POST cut-export': {
        const b = await jsonBody(req);
        pool.faults.cuts.push({
          afterBytes: int(b.afterBytes, 'afterBytes'),
          times: b.times === undefined ? 1 : int(b.times, 'times', 1),
        });
        return json(res, 200, { ok: true });
      }
      case 'POST throttle': {
        const b = await jsonBody(req);
        pool.faults.bytesPerSecond = int(b.bytesPerSecond, 'bytesPerSecond');
        return json(res, 200, { ok: true });
      }
      case 'POST sr/:id/full': {
        const b = await jsonBody(req);
        const sr = pool.db.all('SR').find(([, r]) => r.uuid === parts[1]);
        if (!sr) throw new ControlError(404, `no SR with uuid ${parts[1]}`);
        if (b.full === false) pool.fullSrs.delete(sr[0]);
        else pool.fullSrs.add(sr[0]);
        return json(res, 200, { ok: true });
      }
      case 'POST vdi/:id/random-blocks': {
        const b = await jsonBody(req);
        const { size } = vdiByUuid(pool, parts[1]);
        const blocks = await writeRandomBlocks(
          pool.store,
          parts[1],
          size,
          int(b.count, 'count'),
          b.seed ?? 0,
        );
        refreshAllSrs(pool);
        return json(res, 200, { blocks });
      }
      case 'PUT vdi/:id/bytes': {
        const { size } = vdiByUuid(pool, parts[1]);
        const offset = int(url.searchParams.get('offset'), 'offset');
        const data = await readBody(req, 256 * 1024 * 1024);
        if (offset + data.length > size) {
          throw new ControlError(
            400,
            `write of ${data.length} bytes at ${offset} goes past the VDI's size ${size}`,
          );
        }
        await pool.store.writeBytes(parts[1], offset, data);
        refreshAllSrs(pool);
        return json(res, 200, { ok: true });
      }
      case 'GET vdi/:id/content': {
        const { size } = vdiByUuid(pool, parts[1]);
        const uuid = parts[1];
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
        const n = Math.ceil(size / BLOCK_SIZE);
        async function* blocks() {
          for (let i = 0; i < n; i++) {
            const b = pool.store.isAllocated(uuid, i) ? await pool.store.readBlock(uuid, i) : ZERO_BLOCK;
            yield b.subarray(0, Math.min(BLOCK_SIZE, size - i * BLOCK_SIZE));
          }
        }
        Readable.from(blocks()).pipe(res);
        return;
      }
      case 'GET vdi/:id': {
        const { ref, size } = vdiByUuid(pool, parts[1]);
        return json(res, 200, {
          ref,
          uuid: parts[1],
          virtualSize: size,
          chainLength: pool.store.chainLength(parts[1]),
          allocatedBlocks: pool.store.allocatedBlocks(parts[1]),
        });
      }
      case 'GET stats':
        return json(res, 200, {
          maxConcurrent: pool.stats.max,
          current: pool.stats.current,
          blocksRead: pool.store.blocksRead,
          calls: pool.stats.calls,
        });
      case 'POST stats/reset':
        pool.stats.reset();
        pool.store.blocksRead = 0;
        return json(res, 200, { ok: true });
      case 'GET snapshots': {
        const out = pool.db
          .all('VM')
          .filter(([, r]) => r.is_a_snapshot)
          .map(([ref, r]) => {
            const parent = pool.db.tryGet('VM', String(r.snapshot_of));
            return {
              ref,
              uuid: r.uuid,
              name_label: r.name_label,
              snapshot_of: r.snapshot_of,
              snapshot_of_uuid: parent ? parent.uuid : null,
              orphan: r.snapshot_of === NULL_REF || !parent,
              snapshot_time: toJsonValue(r.snapshot_time),
              tags: r.tags,
              other_config: r.other_config,
            };
          });
        return json(res, 200, out);
      }
      case 'POST coalesce': {
        // after the garbage collector's pass in progress, if any: what is left is merged now
        const merged = await pool.store.coalesce();
        refreshAllSrs(pool);
        return json(res, 200, { merged });
      }
      case 'POST settings': {
        const b = await jsonBody(req);
        if (b.autoCoalesce !== undefined) pool.settings.autoCoalesce = Boolean(b.autoCoalesce);
        if (b.maxChainLength !== undefined)
          pool.settings.maxChainLength = int(b.maxChainLength, 'maxChainLength', 1);
        if (b.coalesceDelayMs !== undefined)
          pool.settings.coalesceDelayMs = int(b.coalesceDelayMs, 'coalesceDelayMs', 0);
        if (b.guestAgentDelayMs !== undefined)
          pool.settings.guestAgentDelayMs = int(b.guestAgentDelayMs, 'guestAgentDelayMs', 0);
        return json(res, 200, { ...pool.settings });
      }
      case 'GET settings':
        return json(res, 200, { ...pool.settings });
      default:
        throw new ControlError(404, `no control route ${req.method} ${url.pathname}`);
    }
  } catch (e) {
    if (e instanceof ControlError) return json(res, e.status, { error: e.message });
    return json(res, 500, { error: toErrorDescription(e).join(' ') });
  }
}
