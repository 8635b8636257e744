import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { XapiTransportError } from './errors';

export interface TransferTarget {
  base: URL;
  allowUnauthorized: boolean;
}

/** XO's length hack for bodies of unknown size: XAPI does not accept chunked uploads. */
export const UNKNOWN_LENGTH = 1125899906842624;

function buildUrl(base: URL, path: string, query: Record<string, string>): URL {
  const url = new URL(path, base);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  return url;
}

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').slice(0, 500);
}

function send(
  target: TransferTarget,
  method: 'GET' | 'PUT',
  url: URL,
  headers: Record<string, string | number>,
  signal?: AbortSignal,
): { req: ReturnType<typeof httpRequest>; response: Promise<IncomingMessage> } {
  const secure = url.protocol === 'https:';
  const req = (secure ? httpsRequest : httpRequest)(url, {
    method,
    headers,
    signal,
    ...(secure ? { rejectUnauthorized: !target.allowUnauthorized } : {}),
  });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', (e: any) =>
      reject(new XapiTransportError(`${method} ${url.pathname}: ${e.message}`, e.code)),
    );
  });
  return { req, response };
}

/** GET a transfer handler; follows XAPI's 302 to another host; non-2xx becomes an error. */
export async function getStream(
  target: TransferTarget,
  path: string,
  query: Record<string, string>,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  let url = buildUrl(target.base, path, query);
  for (let hops = 0; ; hops++) {
    const { req, response } = send(target, 'GET', url, {}, signal);
    req.end();
    const res = await response;
    const status = res.statusCode ?? 0;
    if (status === 302 && res.headers.location && hops < 3) {
      res.resume();
      url = new URL(res.headers.location, url);
      continue;
    }
    if (status < 200 || status >= 300) {
      const text = await readText(res);
      throw new XapiTransportError(
        `GET ${path}: HTTP ${status} ${text.replace(/<[^>]+>/g, ' ').trim()}`,
        undefined,
        status,
      );
    }
    return res;
  }
}

/**
 * PUT a body to a transfer handler with a Content-Length (the real size, or XO's 1 PiB hack when
 * unknown, the socket then being ended after the body). Resolves when the body is sent.
 */
export async function putStream(
  target: TransferTarget,
  path: string,
  query: Record<string, string>,
  body: Readable,
  size: number | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const url = buildUrl(target.base, path, query);
  const { req, response } = send(
    target,
    'PUT',
    url,
    { 'content-length': size ?? UNKNOWN_LENGTH, 'content-type': 'application/octet-stream' },
    signal,
  );
  const early = response.then(async (res) => {
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const text = await readText(res);
      throw new XapiTransportError(
        `PUT ${path}: HTTP ${status} ${text.replace(/<[^>]+>/g, ' ').trim()}`,
        undefined,
        status,
      );
    }
    res.resume();
    return res;
  });
  early.catch(() => {});
  if (size === undefined) {
    try {
      for await (const chunk of body) {
        // A server that gives up mid-body (SR full…) closes the connection: stop writing then,
        // instead of waiting for a drain that never comes.
        if (req.destroyed) break;
        if (!req.write(chunk))
          await new Promise<void>((resolve) => {
            const done = () => {
              req.off('drain', done);
              req.off('close', done);
              resolve();
            };
            req.on('drain', done);
            req.on('close', done);
          });
      }
    } catch (e) {
      req.destroy();
      throw e;
    }
    if (req.destroyed) {
      body.destroy();
      await early;
      throw new XapiTransportError(
        `PUT ${path}: the server closed the connection before the end of the body`,
      );
    }
    // The server cannot see the end of the body: close our side once it is flushed. `end` on the
    // socket sends what Node still buffers, then FIN; destroying it instead (as soon as the
    // request's own end fires) can drop the buffered tail of the body.
    await new Promise<void>((resolve) => req.end(() => resolve()));
    req.socket?.end();
    return;
  }
  await pipeline(body, req).catch(async (e) => {
    await early;
    throw e;
  });
  await early;
}
