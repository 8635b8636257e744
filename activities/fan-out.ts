// Writes one stream to several targets at once (export once, write to all): remote files and SR
// imports. Each remote target writes a temporary file renamed on success (an import is committed
// when XAPI's task succeeds); a target that fails is dropped and the others go on; the slowest
// target sets the pace (backpressure), so memory stays at a few chunks. A target that takes nothing
// for `stallMs` (a frozen mount, a hung server) is dropped too, naming the stall: the others go on,
// and the run is not held for hours by a write that never returns.
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { AtomicWrite, Remote } from '../remotes/remote';
import type { TargetOutcome } from './contract';

/**
 * Where a stream goes: a file on a remote, or an import into an SR (activities/import-sink.ts).
 * `open` starts the write; the fan-out commits or aborts what it returns.
 */
export interface Sink {
  id: string;
  /** how errors name it (`remote "nas"`); `target "<id>"` when not given */
  label?: string;
  open(): Promise<AtomicWrite>;
}

interface Target {
  sink: Sink;
  write?: AtomicWrite;
  error?: string;
}

export interface FanOutResult {
  bytes: number;
  targets: TargetOutcome[];
}

/** Resolves when the stream wants more, or can take no more (error, close): no listener left behind. */
function drained(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('error', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('error', done);
    stream.on('close', done);
  });
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** How long a target may take no bytes before it is dropped, unless the worker is told otherwise. */
export const DEFAULT_STALL_MS = 5 * 60_000;

class StalledError extends Error {
  constructor(label: string, ms: number) {
    super(`${label}: took no data for ${Math.round(ms / 1000)} s (unreachable or frozen): target dropped`);
  }
}

/** `work`, or a StalledError after `ms` (the work itself may never return: it is left behind). */
function withinStall<T>(work: Promise<T>, sink: Sink, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StalledError(sink.label ?? `target "${sink.id}"`, ms)), ms);
  });
  return Promise.race([work, stalled]).finally(() => clearTimeout(timer));
}

export function writeToRemotes(
  source: Readable,
  remotes: readonly Remote[],
  path: string,
  onProgress: (bytes: number) => void = () => {},
  signal?: AbortSignal,
  stallMs = DEFAULT_STALL_MS,
  /** How a target's write is opened (default: a plain atomic file; VHDs: remotes/vhd-directory). */
  open: OpenTarget = (remote, p) => remote.createWriteStreamAtomic(p),
): Promise<FanOutResult> {
  return writeToSinks(
    source,
    remotes.map((r) => remoteSink(r, path, open)),
    onProgress,
    signal,
    stallMs,
  );
}

/** How a target's write is opened on a remote (a plain atomic file; VHDs: remotes/vhd-directory). */
export type OpenTarget = (remote: Remote, path: string) => Promise<AtomicWrite>;

export const remoteSink = (
  remote: Remote,
  path: string,
  open: OpenTarget = (r, p) => r.createWriteStreamAtomic(p),
): Sink => ({
  id: remote.id,
  label: `remote "${remote.id}"`,
  open: () => open(remote, path),
});

/** Feeds one stream to every sink; the result's `remoteId` is each sink's id. */
export async function writeToSinks(
  source: Readable,
  sinks: readonly Sink[],
  onProgress: (bytes: number) => void = () => {},
  signal?: AbortSignal,
  stallMs = DEFAULT_STALL_MS,
): Promise<FanOutResult> {
  // A cancelled activity stops reading at once, whatever the source is doing.
  const stop = () => source.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  if (signal?.aborted) stop();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    return await fanOut(source, sinks, onProgress, stallMs);
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

async function fanOut(
  source: Readable,
  sinks: readonly Sink[],
  onProgress: (bytes: number) => void,
  stallMs: number,
): Promise<FanOutResult> {
  const targets: Target[] = await Promise.all(
    sinks.map(async (sink): Promise<Target> => {
      try {
        return { sink, write: await withinStall(sink.open(), sink, stallMs) };
      } catch (err) {
        return { sink, error: message(err) };
      }
    }),
  );
  const fail = async (t: Target, err: unknown) => {
    if (t.error) return;
    t.error = message(err);
    // A stalled target's abort may hang as its writes do: it finishes when the remote is back.
    const aborted = t.write?.abort().catch(() => {});
    if (!(err instanceof StalledError)) await aborted;
  };
  for (const t of targets) t.write?.stream.on('error', (err) => void fail(t, err));
  const live = () => targets.filter((t) => !t.error);

  let bytes = 0;
  try {
    bytes = await pump(
      source,
      () => live().length > 0,
      onProgress,
      (chunk) => {
        const waits: Promise<void>[] = [];
        for (const t of live()) {
          if (t.write!.stream.write(chunk)) continue;
          waits.push(withinStall(drained(t.write!.stream), t.sink, stallMs).catch((err) => fail(t, err)));
        }
        return waits.length === 0 ? undefined : Promise.all(waits).then(() => {});
      },
    );
  } catch (err) {
    // The source broke (export cut, cancellation): nothing was committed anywhere.
    await Promise.all(targets.map((t) => t.write?.abort().catch(() => {})));
    source.destroy();
    throw err;
  }
  if (live().length === 0) source.destroy();
  await Promise.all(
    live().map(async (t) => {
      try {
        t.write!.stream.end();
        await withinStall(
          once(t.write!.stream, 'finish').then(() => t.write!.commit()),
          t.sink,
          stallMs,
        );
      } catch (err) {
        await fail(t, err);
      }
    }),
  );
  return {
    bytes,
    targets: targets.map((t) =>
      t.error ? { remoteId: t.sink.id, ok: false, error: t.error } : { remoteId: t.sink.id, ok: true },
    ),
  };
}

/**
 * Reads `source` in flowing mode, handing each chunk to `write` as it came (an async iterator would
 * concatenate whatever is buffered: a copy of every byte). `write` returns a promise when a target
 * must drain first: the source pauses until then (backpressure, still without a copy). Stops early
 * when `wanted` says no target is left. Resolves with the bytes read.
 */
function pump(
  source: Readable,
  wanted: () => boolean,
  onProgress: (bytes: number) => void,
  write: (chunk: Buffer) => Promise<void> | undefined,
): Promise<number> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', settle);
      source.off('close', onClose);
      // Whatever the source says from now on (it is destroyed next), it must not crash the worker.
      source.on('error', () => {});
      if (err === undefined) resolve(bytes);
      else reject(err);
    };
    const onEnd = () => settle();
    // Closed without its end or an error: destroyed from outside.
    const onClose = () =>
      settle(source.readableEnded ? undefined : new Error('the export stream closed before its end'));
    const onData = (chunk: Buffer) => {
      if (settled) return;
      bytes += chunk.length;
      const waiting = write(chunk);
      onProgress(bytes);
      if (!wanted()) return settle();
      if (waiting === undefined) return;
      source.pause();
      waiting.then(() => {
        if (!wanted()) settle();
        else if (!settled) source.resume();
      }, settle);
    };
    // The source may have broken before the pump began (an export cut while the sinks were being
    // opened): its 'error' and 'close' are past, so they are read from its state, or it would wait
    // for ever.
    if (source.errored) return settle(source.errored);
    if (source.destroyed) return onClose();
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', settle);
    source.once('close', onClose);
  });
}
