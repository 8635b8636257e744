// Writes one stream to several remotes at once (export once, write to all). Each target writes a
// temporary file renamed on success; a target that fails is dropped and the others go on; the
// slowest target sets the pace (backpressure), so memory stays at a few chunks.
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { AtomicWrite, Remote } from '../remotes/remote';
import type { TargetOutcome } from './contract';

interface Target {
  remote: Remote;
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

export async function writeToRemotes(
  source: Readable,
  remotes: readonly Remote[],
  path: string,
  onProgress: (bytes: number) => void = () => {},
  signal?: AbortSignal,
  /** How a target's write is opened (default: a plain atomic file; VHDs: remotes/vhd-directory). */
  open: (remote: Remote, path: string) => Promise<AtomicWrite> = (remote, p) =>
    remote.createWriteStreamAtomic(p),
): Promise<FanOutResult> {
  // A cancelled activity stops reading at once, whatever the source is doing.
  const stop = () => source.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  if (signal?.aborted) stop();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    return await fanOut(source, remotes, path, onProgress, open);
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

async function fanOut(
  source: Readable,
  remotes: readonly Remote[],
  path: string,
  onProgress: (bytes: number) => void,
  open: (remote: Remote, path: string) => Promise<AtomicWrite>,
): Promise<FanOutResult> {
  const targets: Target[] = await Promise.all(
    remotes.map(async (remote): Promise<Target> => {
      try {
        return { remote, write: await open(remote, path) };
      } catch (err) {
        return { remote, error: message(err) };
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
      t.error ? { remoteId: t.remote.id, ok: false, error: t.error } : { remoteId: t.remote.id, ok: true },
    ),
  };
}
