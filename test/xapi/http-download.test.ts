// The export GET read into large buffers (xapi/http-download.ts), against real HTTP servers: every
// framing a transfer handler may use gives back the exact bytes, a body cut short is an error (never
// a complete-looking file), and a reader that takes its time gets everything (backpressure).
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DownloadError, download } from '../../xapi/http-download';
import { getStream } from '../../xapi/http-transfer';

const servers: (Server | NetServer)[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => {
      (s as Server).closeAllConnections?.();
      return new Promise((r) => s.close(r));
    }),
  );
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<URL> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
}

/** A server that answers every connection with `reply` as raw bytes, then closes it. */
async function serveRaw(reply: (send: (b: Buffer | string) => void, end: () => void) => void): Promise<URL> {
  const server = createNetServer((socket) => {
    socket.once('data', () =>
      reply(
        (b) => socket.write(b),
        () => socket.end(),
      ),
    );
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
}

async function readAll(body: NodeJS.ReadableStream, slowly = false): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) {
    chunks.push(c as Buffer);
    if (slowly) await new Promise((r) => setTimeout(r, 1));
  }
  return Buffer.concat(chunks);
}

/** Sends `data` in pieces of random sizes, with the server's backpressure. */
async function sendInPieces(res: ServerResponse, data: Buffer): Promise<void> {
  let o = 0;
  while (o < data.length) {
    const n = Math.min(data.length - o, 1 + Math.floor(Math.random() * 300_000));
    if (!res.write(data.subarray(o, o + n))) await new Promise((r) => res.once('drain', r));
    o += n;
  }
  res.end();
}

describe('download', () => {
  const data = randomBytes(9 * 1024 * 1024 + 12345);

  it('reads a body delimited by the end of the connection (XAPI exports), by Content-Length, or chunked', async () => {
    for (const framing of ['close', 'length', 'chunked'] as const) {
      const url = await serve((_req, res) => {
        if (framing === 'close') {
          res.useChunkedEncodingByDefault = false;
          res.writeHead(200, { connection: 'close', 'x-task': 'OpaqueRef:t' });
        } else if (framing === 'length') res.writeHead(200, { 'content-length': data.length });
        else res.writeHead(200); // Node chunks a body of unknown length
        void sendInPieces(res, data);
      });
      const res = await download(new URL(`${url}export?x=1`));
      expect(res.status).toBe(200);
      if (framing === 'close') expect(res.headers['x-task']).toBe('OpaqueRef:t');
      if (framing === 'chunked') expect(res.headers['transfer-encoding']).toBe('chunked');
      expect((await readAll(res.body)).equals(data), framing).toBe(true);
    }
  });

  it('gives every byte to a reader slower than the server', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': data.length });
      void sendInPieces(res, data);
    });
    const res = await download(url);
    expect((await readAll(res.body, true)).equals(data)).toBe(true);
  });

  it('fails a body cut before its Content-Length, or in a chunk, naming it', async () => {
    const cutLength = await serveRaw((send, end) => {
      send('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n');
      send(Buffer.alloc(600));
      end();
    });
    const res = await download(cutLength);
    await expect(readAll(res.body)).rejects.toThrow(/closed the connection 400 bytes before the end/);

    const cutChunked = await serveRaw((send, end) => {
      send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n');
      send(Buffer.alloc(600));
      end();
    });
    const res2 = await download(cutChunked);
    await expect(readAll(res2.body)).rejects.toThrow(/before the end of the chunked body/);
  });

  it('refuses what is not an HTTP answer, and a malformed chunk', async () => {
    const notHttp = await serveRaw((send, end) => {
      send('SSH-2.0-OpenSSH\r\n\r\n');
      end();
    });
    await expect(download(notHttp)).rejects.toThrow(/not an HTTP\/1.x response: "SSH-2.0-OpenSSH"/);

    const badChunk = await serveRaw((send, end) => {
      send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
      end();
    });
    const res = await download(badChunk);
    await expect(readAll(res.body)).rejects.toThrow(/bad chunk size "zz"/);
  });

  it('names the socket error of a server that is not there', async () => {
    const url = await serve(() => {});
    await new Promise((r) => servers.pop()!.close(r));
    const err = await download(url).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.code).toBe('ECONNREFUSED');
  });

  it('stops when its signal aborts, before or during the body, and closes the connection', async () => {
    let closed = 0;
    const url = await serve((req, res) => {
      req.socket.on('close', () => closed++);
      res.writeHead(200, { 'content-length': 10 * data.length });
      res.write(data);
    });
    const ac = new AbortController();
    const res = await download(url, { signal: ac.signal });
    const reading = readAll(res.body);
    ac.abort();
    await expect(reading).rejects.toThrow(/aborted/);
    await expect(download(url, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORT_ERR' });
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBeGreaterThanOrEqual(1);
  });
});

describe('getStream', () => {
  it("follows XAPI's 302 to another host, and turns an HTTP error into one naming the status and text", async () => {
    const body = randomBytes(100_000);
    const final = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    const redirecting = await serve((req, res) => {
      if (req.url?.startsWith('/missing')) {
        res.writeHead(404, { 'content-type': 'text/html' });
        res.end('<html><body>VDI not found</body></html>');
        return;
      }
      res.writeHead(302, { location: `${final}export_raw_vdi?vdi=x` });
      res.end();
    });
    const target = { base: redirecting, allowUnauthorized: false };
    const stream = await getStream(target, '/export_raw_vdi', { vdi: 'x' });
    expect((await readAll(stream)).equals(body)).toBe(true);
    await expect(getStream(target, '/missing', {})).rejects.toMatchObject({
      statusCode: 404,
      message: 'GET /missing: HTTP 404 VDI not found',
    });
  });
});
