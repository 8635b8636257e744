import type { IncomingMessage, ServerResponse } from 'node:http';

export const MAX_RPC_BODY = 64 * 1024 * 1024;

export async function readBody(req: IncomingMessage, limit = MAX_RPC_BODY): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) throw new Error(`request body larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorised',
  403: 'Forbidden',
  404: 'Not Found',
  500: 'Internal Server Error',
};

/** XAPI answers errors of its HTTP layer with a small HTML page. */
export function sendHtmlError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const reason = REASONS[status] ?? 'Error';
  const body = `<html><body><h1>HTTP ${status} ${reason}</h1>${escapeHtml(message)}</body></html>`;
  res.writeHead(status, reason, {
    'content-type': 'text/html',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
    ...headers,
  });
  res.end(body);
}

/** Cookie values of the request. */
export function cookies(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}
