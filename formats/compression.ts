import { spawn } from 'node:child_process';
import { Duplex, PassThrough, type Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';

export type CompressionKind = 'none' | 'gzip' | 'zstd';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Which compression a stream uses, from its first bytes (gzip 1F 8B, zstd 28 B5 2F FD). */
export function detectCompression(firstBytes: Uint8Array): CompressionKind {
  const starts = (m: number[]) => firstBytes.length >= m.length && m.every((b, i) => firstBytes[i] === b);
  if (starts(GZIP_MAGIC)) return 'gzip';
  if (starts(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

export interface CompressOptions {
  /** gzip 1–9 (default 6), zstd 1–19 (default 3). */
  level?: number;
  /** zstd compression threads (default 0: one per core) */
  threads?: number;
}

/**
 * A compressing transform. gzip runs in zlib's thread pool; zstd runs in the `zstd` binary (Debian
 * package zstd) as a child process, so neither blocks the event loop; memory is bounded by the stream
 * buffers.
 */
export function compressStream(kind: CompressionKind, opts: CompressOptions = {}): Duplex {
  switch (kind) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      return createGzip({ level: opts.level ?? 6 });
    case 'zstd':
      return zstdProcess(['-q', '-c', `-${opts.level ?? 3}`, `-T${opts.threads ?? 0}`]);
  }
}

/** The matching decompressing transform; a corrupt input fails the stream (never a silent short read). */
export function decompressStream(kind: CompressionKind): Duplex {
  switch (kind) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      return createGunzip();
    case 'zstd':
      return zstdProcess(['-q', '-d', '-c']);
  }
}

function zstdProcess(args: string[]): Duplex {
  const child = spawn('zstd', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let stderr = '';
  let failed = false;
  const fail = (err: Error) => {
    if (failed) return;
    failed = true;
    out.destroy(err);
    duplex.destroy(err);
  };
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  // Output ends only once the exit code is known, so a failure is never mistaken for a clean end.
  child.stdout.pipe(out, { end: false });
  child.on('error', (e: NodeJS.ErrnoException) =>
    fail(e.code === 'ENOENT' ? new Error('zstd binary not found (install the zstd package)') : e),
  );
  child.on('close', (code, signal) => {
    if (code === 0) out.end();
    else
      fail(
        new Error(
          `zstd ${args.includes('-d') ? 'decompression' : 'compression'} failed (${signal ?? code}): ${stderr.trim()}`,
        ),
      );
  });
  child.stdin.on('error', (e) => fail(e));
  const duplex = Duplex.from({ writable: child.stdin, readable: out });
  duplex.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  return duplex;
}

/**
 * Looks at the first bytes of `input` and returns the decompressed stream (or the input as is),
 * without losing the bytes it looked at.
 */
export async function autoDecompress(input: Readable): Promise<{ kind: CompressionKind; stream: Readable }> {
  const first = await peek(input, 4);
  const kind = detectCompression(first.bytes);
  if (kind === 'none') return { kind, stream: first.stream };
  const d = decompressStream(kind);
  first.stream.on('error', (e) => d.destroy(e));
  return { kind, stream: first.stream.pipe(d) };
}

/** Reads at least n bytes (or to the end), then gives back a stream replaying everything. */
async function peek(input: Readable, n: number): Promise<{ bytes: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let total = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      chunks.push(c);
      total += c.length;
      if (total >= n) done();
    };
    const onEnd = () => done();
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
    };
    const done = () => {
      cleanup();
      input.pause();
      resolve();
    };
    input.on('data', onData);
    input.on('end', onEnd);
    input.on('error', onError);
  });
  const bytes = Buffer.concat(chunks);
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  out.write(bytes);
  if (input.readableEnded) out.end();
  else {
    input.on('error', (e) => out.destroy(e));
    input.pipe(out);
  }
  return { bytes, stream: out };
}
