import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/** XO's "unknown length" hack: Content-Length 1 PiB, socket closed after the body. */
export const LENGTH_HACK = 1125899906842624;

/**
 * The request body as a stream that simply ends when the client closes the connection after the
 * real data (needed for the 1 PiB Content-Length hack), instead of erroring.
 */
export function requestBody(req: IncomingMessage): Readable {
  const hack = Number(req.headers['content-length']) >= LENGTH_HACK;
  if (!hack) return req;
  const out = new Readable({ read: () => req.resume() });
  req.on('data', (c: Buffer) => {
    if (!out.push(c)) req.pause();
  });
  const end = () => out.push(null);
  req.on('end', end);
  req.on('aborted', end);
  req.on('error', end);
  req.on('close', end);
  return out;
}

/** Re-chunks a stream into fixed-size pieces (the last one may be shorter). */
export async function* fixedChunks(input: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let buf = Buffer.allocUnsafe(size);
  let fill = 0;
  for await (const chunk of input) {
    let pos = 0;
    while (pos < chunk.length) {
      const n = Math.min(size - fill, chunk.length - pos);
      chunk.copy(buf, fill, pos, pos + n);
      fill += n;
      pos += n;
      if (fill === size) {
        yield buf;
        buf = Buffer.allocUnsafe(size);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill);
}
