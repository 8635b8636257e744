// The GET of a transfer handler (a disk or VM export: GiBs), read from the socket straight into
// large buffers. Node's HTTP client reads a socket 64 KiB at a time into a new buffer each time, and
// hands each to JS through the parser and two streams: for an export that was most of what the
// backup cost on top of curl (bench/backup-datapath.ts with `--cpu-prof`: the garbage collector of
// those buffers, the parser's callbacks). Here the socket reads into 4 MiB slabs (`onread`: as many
// bytes per read as the kernel holds, up to the slab's free space) and the body's chunks are slices
// of them: one allocation per 4 MiB, no copy. A slab is never reused: it lives as long as a slice
// of it is referenced downstream, like any Buffer.
//
// Only what transfer handlers answer is understood: one response on a connection of its own
// (`Connection: close`), its body delimited by Content-Length, chunked, or the end of the connection
// (XAPI's exports); anything else fails naming what was wrong.
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';

/** Bytes of each read buffer: a read takes what the socket holds, up to the free space left. */
const SLAB = 4 * 1024 * 1024;
/** A slab with less free space than this is left for a new one (a read may be this large). */
const MIN_READ = 256 * 1024;
/** A status line and headers longer than this are not a transfer handler's answer. */
const MAX_HEAD = 64 * 1024;

export interface DownloadResponse {
  status: number;
  /** header names in lower case; a repeated header's values joined with ', ' */
  headers: Record<string, string>;
  /** the body: destroying it closes the connection */
  body: Readable;
}

export class DownloadError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

type Framing =
  | { kind: 'close' }
  | { kind: 'length'; left: number }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-end' | 'trailer'; left: number; line: Buffer };

/**
 * GETs `url` on a connection of its own. Resolves once the response's head is read; rejects with a
 * DownloadError (its `code`: the socket's, ECONNREFUSED…; ABORT_ERR when `signal` aborted) before it.
 */
export function download(
  url: URL,
  opts: { allowUnauthorized?: boolean; signal?: AbortSignal } = {},
): Promise<DownloadResponse> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || (secure ? 443 : 80));
    let slab = Buffer.allocUnsafeSlow(SLAB);
    let used = 0;
    let head: Buffer | undefined = Buffer.alloc(0);
    let framing: Framing = { kind: 'close' };
    let answered = false;
    let ended = false;

    const body = new Readable({
      highWaterMark: SLAB,
      // the socket stops reading when a push finds the body full (onread's callback returned false)
      read: () => socket.resume(),
      destroy: (error, callback) => {
        socket.destroy();
        callback(error);
      },
    });
    // A body may fail before its reader is there (a malformed first chunk, read with the head): its
    // reader learns it from the stream's state (`errored`, a rejected iteration), not a crash.
    body.on('error', () => {});
    const finish = () => {
      if (ended) return;
      ended = true;
      body.push(null);
      socket.destroy();
    };
    const fail = (error: DownloadError) => {
      if (!answered) {
        answered = true;
        socket.destroy();
        reject(error);
      } else if (!ended) {
        ended = true;
        body.destroy(error);
      }
    };

    /** Fails the download for a malformed answer; false: read no more. */
    const bad = (problem: string): false => {
      fail(new DownloadError(problem));
      return false;
    };

    /** Hands a slice of the body on; false when the body's reader wants no more for now. */
    const deliver = (data: Buffer): boolean => (data.length === 0 || ended ? true : body.push(data));

    /** Reads the body's framing from `data`; false to pause the socket. */
    const onBody = (data: Buffer): boolean => {
      const f = framing;
      if (f.kind === 'close') return deliver(data);
      if (f.kind === 'length') {
        const take = data.subarray(0, f.left);
        f.left -= take.length;
        const more = deliver(take);
        if (f.left === 0) finish();
        return more;
      }
      let more = true;
      let o = 0;
      while (o < data.length && !ended) {
        if (f.state === 'data') {
          const take = data.subarray(o, o + f.left);
          o += take.length;
          f.left -= take.length;
          more = deliver(take) && more;
          if (f.left === 0) f.state = 'data-end';
          continue;
        }
        // a size line, the CRLF after a chunk's data, or the trailer: small, gathered byte by byte
        const nl = data.indexOf(10, o);
        const end = nl < 0 ? data.length : nl + 1;
        f.line = Buffer.concat([f.line, data.subarray(o, end)]);
        o = end;
        if (f.line.length > 4096) return bad('chunked body: a chunk line is too long');
        if (nl < 0) break;
        const line = f.line.toString('latin1').trimEnd();
        f.line = Buffer.alloc(0);
        if (f.state === 'data-end') {
          if (line !== '') return bad('chunked body: no CRLF after a chunk');
          f.state = 'size';
        } else if (f.state === 'size') {
          const size = Number.parseInt(line.split(';')[0], 16);
          if (!/^[0-9a-fA-F]+/.test(line) || !Number.isSafeInteger(size))
            return bad(`chunked body: bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
          if (size === 0) f.state = 'trailer';
          else {
            f.state = 'data';
            f.left = size;
          }
        } else if (line === '') finish(); // the trailer's end
      }
      return more;
    };

    const onHead = (data: Buffer): boolean => {
      head = Buffer.concat([head!, data]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        return head.length > MAX_HEAD ? bad(`response head longer than ${MAX_HEAD} bytes`) : true;
      }
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const rest = head.subarray(end + 4);
      head = undefined;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
      if (!m) return bad(`not an HTTP/1.x response: ${JSON.stringify(lines[0].slice(0, 80))}`);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
      }
      const status = Number(m[1]);
      if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? ''))
        framing = { kind: 'chunked', state: 'size', left: 0, line: Buffer.alloc(0) };
      else if (headers['content-length'] !== undefined) {
        const length = Number(headers['content-length']);
        if (!Number.isSafeInteger(length) || length < 0)
          return bad(`bad Content-Length ${JSON.stringify(headers['content-length'])}`);
        framing = { kind: 'length', left: length };
      }
      answered = true;
      resolve({ status, headers, body });
      if (framing.kind === 'length' && framing.left === 0) finish();
      return onBody(rest);
    };

    const onread = {
      buffer: () => {
        if (SLAB - used < MIN_READ) {
          slab = Buffer.allocUnsafeSlow(SLAB);
          used = 0;
        }
        return slab.subarray(used);
      },
      callback: (n: number, buf: Uint8Array): boolean => {
        const data = Buffer.from(buf.buffer, buf.byteOffset, n);
        used += n;
        return head !== undefined ? onHead(data) : onBody(data);
      },
    };
    const socket: Socket = secure
      ? tlsConnect({
          host,
          port,
          ...(isIP(host) ? {} : { servername: host }),
          rejectUnauthorized: !opts.allowUnauthorized,
          onread,
        } as ConnectionOptions)
      : netConnect({ host, port, onread });
    socket.on('error', (e: NodeJS.ErrnoException) => fail(new DownloadError(e.message, e.code)));
    socket.on('end', () => {
      if (!answered)
        fail(new DownloadError('the server closed the connection before its answer', 'ECONNRESET'));
      else if (framing.kind === 'close') finish();
      else if (!ended)
        fail(
          new DownloadError(
            framing.kind === 'length'
              ? `the server closed the connection ${framing.left} bytes before the end of the body`
              : 'the server closed the connection before the end of the chunked body',
            'ECONNRESET',
          ),
        );
    });
    socket.on('close', () => {
      if (!ended) fail(new DownloadError('the connection closed before the end of the body', 'ECONNRESET'));
    });
    const request = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`;
    socket.write(request);

    const signal = opts.signal;
    if (signal) {
      const abort = () => fail(new DownloadError('The operation was aborted', 'ABORT_ERR'));
      if (signal.aborted) abort();
      else {
        signal.addEventListener('abort', abort, { once: true });
        socket.once('close', () => signal.removeEventListener('abort', abort));
      }
    }
  });
}
