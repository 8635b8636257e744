import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { XapiFailure } from '../errors';
import { login } from '../objects/session';
import { assertNotCancelled, createTask, failTask, isPending, setProgress } from '../objects/tasks';
import type { PoolState } from '../pool';
import { prefetch } from './prefetch';
import { cookies, sendHtmlError } from './util';

/** An authenticated HTTP transfer with the task that tracks it (adopted from `task_id` or created). */
export interface Transfer {
  pool: PoolState;
  session: string;
  task: string;
  /** request parameter: cookie first, then query string (XAPI's lookup order) */
  param(name: string): string | undefined;
  /** the session was opened for this request (Basic auth) and is closed at the end */
  ownSession: boolean;
}

/**
 * Authenticates as XAPI's `xapi_http.ml` does (session_id, else Basic auth, else 401) and adopts or
 * creates the task. Returns undefined when an answer was already sent.
 */
export function beginTransfer(
  pool: PoolState,
  req: IncomingMessage,
  res: ServerResponse,
  label: string,
): Transfer | undefined {
  const url = new URL(req.url ?? '/', 'http://sim');
  const jar = cookies(req);
  const param = (name: string): string | undefined => jar[name] ?? url.searchParams.get(name) ?? undefined;
  const taskId = param('task_id');
  const adopted = taskId !== undefined && pool.db.has('task', taskId) ? taskId : undefined;
  let session = param('session_id');
  let ownSession = false;
  if (session === undefined || !pool.db.has('session', session)) {
    session = undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [user, ...rest] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      try {
        session = login(
          pool,
          user,
          rest.join(':'),
          `${req.headers['user-agent'] ?? 'client'} using Basic auth`,
        );
        ownSession = true;
      } catch {
        session = undefined;
      }
    }
  }
  if (session === undefined) {
    if (adopted)
      failTask(pool, adopted, new XapiFailure('SESSION_AUTHENTICATION_FAILED', ['', 'no valid session']));
    sendHtmlError(res, 401, 'Authorisation failed: no valid session_id, and no valid Basic credentials', {
      'WWW-Authenticate': `Basic realm="xapi"`,
    });
    return undefined;
  }
  const task = adopted ?? createTask(pool, label, '', session);
  return { pool, session, task, param, ownSession };
}

export function endTransfer(t: Transfer): void {
  if (t.ownSession && t.pool.db.has('session', t.session)) t.pool.db.remove('session', t.session);
}

/** Fails the transfer's task and answers with an HTTP error (or cuts the stream if one started). */
export function failTransfer(t: Transfer, res: ServerResponse, status: number, error: unknown): void {
  failTask(t.pool, t.task, error);
  const desc =
    error instanceof XapiFailure ? error.description.join(' ') : String((error as Error)?.message ?? error);
  sendHtmlError(res, status, desc, { 'task-id': t.task });
  endTransfer(t);
}

/** Headers of a close-delimited download (no Content-Length, not chunked), as XAPI sends them. */
export function startDownload(t: Transfer, res: ServerResponse, contentType: string, filename: string): void {
  res.useChunkedEncodingByDefault = false;
  res.writeHead(200, 'OK', {
    connection: 'close',
    'cache-control': 'no-cache, no-store',
    'task-id': t.task,
    'content-type': contentType,
    'content-disposition': `attachment; filename="${filename}"`,
  });
}

export class CutError extends Error {}

/**
 * Writes a stream of buffers to the response with backpressure, honouring the armed cut and the
 * throttle, and checking the task for cancellation. Throws VDI_IO_ERROR when the export is cut.
 */
export async function pump(
  t: Transfer,
  res: ServerResponse,
  chunks: AsyncIterable<Buffer>,
  total?: number,
): Promise<number> {
  const cutAfter = t.pool.faults.takeCut();
  let sent = 0;
  let lastProgress = 0;
  const started = Date.now();
  for await (const chunk of prefetch(chunks, 3)) {
    assertNotCancelled(t.pool, t.task);
    if (res.destroyed) throw new XapiFailure('VDI_IO_ERROR', ['Device I/O errors']);
    let piece = chunk;
    if (cutAfter !== undefined && sent + piece.length >= cutAfter) {
      piece = piece.subarray(0, cutAfter - sent);
      await write(res, piece);
      sent += piece.length;
      res.socket?.destroySoon();
      res.destroy();
      throw new XapiFailure('VDI_IO_ERROR', ['Device I/O errors']);
    }
    await write(res, piece);
    sent += piece.length;
    const rate = t.pool.faults.bytesPerSecond;
    if (rate > 0) {
      const due = started + (sent / rate) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
    }
    if (total && Date.now() - lastProgress > 1000 && isPending(t.pool, t.task)) {
      lastProgress = Date.now();
      setProgress(t.pool, t.task, Math.min(0.99, sent / total));
    }
  }
  return sent;
}

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  if (chunk.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onClose = () => reject(new XapiFailure('VDI_IO_ERROR', ['Device I/O errors']));
    res.once('close', onClose);
    const ok = res.write(chunk, (err) => {
      if (err) reject(new XapiFailure('VDI_IO_ERROR', ['Device I/O errors']));
    });
    const done = () => {
      res.off('close', onClose);
      resolve();
    };
    if (ok) done();
    else res.once('drain', done);
  });
}

/** Makes `task.cancel` of the transfer's task abort it. */
export function cancellable(t: Transfer, abort: () => void): void {
  t.pool.cancellers.set(t.task, abort);
}
