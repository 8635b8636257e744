import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PoolState } from '../pool';
import { dispatch } from '../rpc/dispatch';
import { encodeJsonFailure, encodeJsonSuccess, parseJsonCall } from '../rpc/jsonrpc';
import { encodeXmlResponse, parseXmlCall } from '../rpc/xmlrpc';
import { readBody, sendHtmlError } from './util';

const CORS = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Headers': 'X-Requested-With' };

function send(res: ServerResponse, contentType: string, body: string): void {
  const buf = Buffer.from(body, 'utf8');
  res.writeHead(200, { 'content-type': contentType, 'content-length': buf.length, ...CORS });
  res.end(buf);
}

/** XML-RPC on `/`, `/RPC2`, `/xmlrpc` (and any other POST path, as XAPI's longest-prefix rule does). */
export async function handleXmlRpc(
  pool: PoolState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const body = await readBody(req);
  let call: Awaited<ReturnType<typeof parseXmlCall>>;
  try {
    call = await parseXmlCall(body);
  } catch (e) {
    sendHtmlError(res, 500, (e as Error).message);
    return;
  }
  const result = await dispatch(pool, call.method, call.params);
  const value =
    result.kind === 'raw'
      ? result.value
      : result.kind === 'success'
        ? { Status: 'Success', Value: result.value }
        : { Status: 'Failure', ErrorDescription: result.error };
  send(res, 'text/xml', encodeXmlResponse(value));
}

/** JSON-RPC 1.0 and 2.0 on `/jsonrpc`. */
export async function handleJsonRpc(
  pool: PoolState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const body = await readBody(req);
  let call: ReturnType<typeof parseJsonCall>;
  try {
    call = parseJsonCall(body);
  } catch (e) {
    sendHtmlError(res, 500, (e as Error).message);
    return;
  }
  const result = await dispatch(pool, call.method, call.params);
  send(
    res,
    'application/json',
    result.kind === 'failure' ? encodeJsonFailure(call, result.error) : encodeJsonSuccess(call, result.value),
  );
}

export function handleOptions(res: ServerResponse): void {
  res.writeHead(200, {
    ...CORS,
    'Access-Control-Allow-Methods': 'POST, GET, PUT, OPTIONS',
    'content-length': 0,
  });
  res.end();
}
