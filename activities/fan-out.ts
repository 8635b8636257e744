// Writes one stream to several targets at once (export once, write to all): remote files and SR
// imports. Each remote target writes a temporary file renamed on success (an import is committed
// when XAPI's task succeeds); a target that fails is dropped and the others go on; the
// slowest target sets the pace (backpressure), so memory stays at a few chunks.
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

export function writeToRemotes(
  source: Readable,
  remotes: readonly Remote[],
  path: string,
  onProgress: (bytes: number) => void = () => {},
  signal?: AbortSignal,
): Promise<FanOutResult> {
  return writeToSinks(
    source,
    remotes.map((r) => remoteSink(r, path)),
    onProgress,
    signal,
  );
}

export const remoteSink = (remote: Remote, path: string): Sink => ({
  id: remote.id,
  open: () => remote.createWriteStreamAtomic(path),
});

/** Feeds one stream to every sink; the result's `remoteId` is each sink's id. */
export async function writeToSinks(
  source: Readable,
  sinks: readonly Sink[],
  onProgress: (bytes: number) => void = () => {},
  signal?: AbortSignal,
): Promise<FanOutResult> {
  // A cancelled activity stops reading at once, whatever the source is doing.
  const stop = () => source.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  if (signal?.aborted) stop();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    return await fanOut(source, sinks, onProgress);
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

async function fanOut(
  source: Readable,
  sinks: readonly Sink[],
  onProgress: (bytes: number) => void,
): Promise<FanOutResult> {
  const targets: Target[] = await Promise.all(
    sinks.map(async (sink): Promise<Target> => {
      try {
        return { sink, write: await sink.open() };
      } catch (err) {
        return { sink, error: message(err) };
      }
    }),
  );
  const fail = async (t: Target, err: unknown) => {
    if (t.error) return;
    t.error = message(err);
    await t.write?.abort().catch(() => {});
  };
  for (const t of targets) t.write?.stream.on('error', (err) => void fail(t, err));
  const live = () => targets.filter((t) => !t.error);

  let bytes = 0;
  try {
    for await (const chunk of source) {
      if (live().length === 0) break;
      bytes += chunk.length;
      await Promise.all(
        live().map(async (t) => {
          if (!t.write!.stream.write(chunk)) await drained(t.write!.stream);
        }),
      );
      onProgress(bytes);
    }
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
        await once(t.write!.stream, 'finish');
        await t.write!.commit();
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
