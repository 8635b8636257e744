import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { CompressOptions } from '../../formats/compression';
import { XapiFailure } from '../errors';
import { assertNotCancelled } from '../objects/tasks';
import { prefetch } from './prefetch';
import { cancellable, type Transfer } from './transfer';

/**
 * Sends a compressed download the way XAPI does: `Zstd.Default.compress s go` (export.ml) forks
 * `/usr/bin/zstd` with the client's socket as its standard output and writes the uncompressed
 * stream into its standard input, so the compressed bytes go from zstd to the client without
 * passing through the toolstack again. Here too: the response headers are sent, then zstd gets a
 * duplicate of the socket's descriptor and this process only feeds it the XVA pieces.
 * Throws VDI_IO_ERROR when the client or zstd goes away, TASK_CANCELLED when the task is cancelled.
 */
export async function zstdToSocket(
  t: Transfer,
  res: ServerResponse,
  pieces: AsyncIterable<Buffer>,
  opts: Required<Pick<CompressOptions, 'level' | 'threads'>>,
): Promise<void> {
  const socket = res.socket;
  if (!socket) throw new XapiFailure('VDI_IO_ERROR', ['Device I/O errors']);
  res.flushHeaders();
  // the headers must be in the kernel before zstd writes to the same socket
  while (socket.writableLength > 0 && !socket.destroyed) await new Promise((r) => setImmediate(r));
  const child = spawn('zstd', ['-q', '-c', `-${opts.level}`, `-T${opts.threads}`], {
    stdio: ['pipe', socket, 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  child.stdin.on('error', () => {}); // a zstd gone early is reported through its exit
  const exited = new Promise<number | string>((resolve) => {
    child.once('error', (e) => resolve(e.message));
    child.once('close', (code, signal) => resolve(code ?? signal ?? 'killed'));
  });
  // the socket's descriptor lives on in zstd: a cancel must stop zstd as well as close ours
  cancellable(t, () => {
    child.kill('SIGKILL');
    res.destroy();
  });
  const ioError = () => new XapiFailure('VDI_IO_ERROR', ['Device I/O errors']);
  try {
    for await (const piece of prefetch(pieces, 3)) {
      assertNotCancelled(t.pool, t.task);
      if (res.destroyed || child.exitCode !== null || child.signalCode !== null) throw ioError();
      if (!child.stdin.write(piece)) {
        const r = await Promise.race([once(child.stdin, 'drain').then(() => 'drain'), exited]);
        if (r !== 'drain') throw ioError();
      }
    }
    child.stdin.end();
    const code = await exited;
    if (code !== 0) {
      assertNotCancelled(t.pool, t.task);
      throw new XapiFailure('VDI_IO_ERROR', [`zstd failed (${code}): ${stderr.trim()}`]);
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
