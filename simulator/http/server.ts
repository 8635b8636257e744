import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { CONTROL_PREFIX, handleControl } from '../control/routes';
import type { PoolState } from '../pool';
import { handleExportRawVdi } from './export-raw';
import { handleExportXva } from './export-xva';
import { handleImportRawVdi } from './import-raw';
import { handleImportXva } from './import-xva';
import { handleJsonRpc, handleOptions, handleXmlRpc } from './rpc';
import { sendHtmlError } from './util';

type Handler = (pool: PoolState, req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** Transfer handlers, matched with or without a trailing slash (XO uses `/export/`…). */
const TRANSFERS: Record<string, Record<string, Handler>> = {
  GET: { '/export': handleExportXva, '/export_raw_vdi': handleExportRawVdi },
  PUT: { '/import': handleImportXva, '/import_raw_vdi': handleImportRawVdi },
};

function route(pool: PoolState, req: IncomingMessage, res: ServerResponse): Promise<void> | void {
  const path = new URL(req.url ?? '/', 'http://sim').pathname;
  if (path.startsWith(CONTROL_PREFIX)) return handleControl(pool, req, res);
  const method = req.method ?? 'GET';
  if (method === 'OPTIONS') return handleOptions(res);
  const transfer = TRANSFERS[method]?.[path.replace(/\/+$/, '')];
  if (transfer) return transfer(pool, req, res);
  if (method === 'POST') {
    if (path === '/jsonrpc' || path === '/jsonrpc/') return handleJsonRpc(pool, req, res);
    // XAPI's longest-prefix rule: every other POST path lands on `/`, XML-RPC
    return handleXmlRpc(pool, req, res);
  }
  sendHtmlError(res, 404, `no handler for ${method} ${path}`);
}

/** The HTTP server of one pool: XAPI (RPC + transfers) and the control API on one port. */
export function createPoolServer(pool: PoolState): Server {
  const server = createServer((req, res) => {
    Promise.resolve()
      .then(() => route(pool, req, res))
      .catch((e: unknown) =>
        sendHtmlError(res, 500, `internal error: ${(e as Error)?.message ?? String(e)}`),
      );
  });
  server.keepAliveTimeout = 5000;
  return server;
}
