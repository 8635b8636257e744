import { toJsonValue, type XValue } from './values';

export interface JsonCall {
  version: 1 | 2;
  id: string | number;
  method: string;
  params: unknown[];
}

/** Parses a JSON-RPC 1.0 or 2.0 request; throws with a message naming what is wrong. */
export function parseJsonCall(body: Buffer): JsonCall {
  let req: any;
  try {
    req = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new Error(`malformed JSON-RPC request: ${(e as Error).message}`);
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    throw new Error('malformed JSON-RPC request: not an object');
  }
  if (typeof req.method !== 'string') throw new Error('malformed JSON-RPC request: method is not a string');
  if (req.id === undefined || req.id === null) throw new Error('malformed JSON-RPC request: id is missing');
  const params = req.params === undefined ? [] : req.params;
  if (!Array.isArray(params)) throw new Error('malformed JSON-RPC request: params is not an array');
  return { version: req.jsonrpc === '2.0' ? 2 : 1, id: req.id, method: req.method, params };
}

export function encodeJsonSuccess(call: Pick<JsonCall, 'version' | 'id'>, value: XValue): string {
  const result = toJsonValue(value);
  return JSON.stringify(
    call.version === 2 ? { jsonrpc: '2.0', result, id: call.id } : { result, error: null, id: call.id },
  );
}

export function encodeJsonFailure(
  call: Pick<JsonCall, 'version' | 'id'>,
  errorDescription: string[],
): string {
  const [code, ...params] = errorDescription;
  return JSON.stringify(
    call.version === 2
      ? { jsonrpc: '2.0', error: { code: 1, message: code, data: params }, id: call.id }
      : { result: null, error: errorDescription, id: call.id },
  );
}
