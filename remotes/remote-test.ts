// A remote's health and speed, as Xen Orchestra's "test remote" does: write a file, read it back
// (whole and a byte range), rename it, delete it, timing the data steps. Everything happens under a
// hidden name at the root and is removed at the end, even on failure.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Remote } from './remote';

export interface RemoteTestStep {
  step: 'write' | 'read' | 'ranged read' | 'rename' | 'delete';
  ok: boolean;
  ms: number;
  /** MiB/s for the data steps */
  throughput?: number;
  error?: string;
}

export interface RemoteTestResult {
  remoteId: string;
  ok: boolean;
  bytes: number;
  steps: RemoteTestStep[];
}

const MiB = 1024 * 1024;

/** `sizeMiB` of random data, generated block by block (never held whole in memory). */
function randomSource(sizeMiB: number, hash: ReturnType<typeof createHash>): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < sizeMiB; i++) {
        const chunk = randomBytes(MiB);
        hash.update(chunk);
        yield chunk;
      }
    })(),
  );
}

export async function testRemote(remote: Remote, sizeMiB = 32): Promise<RemoteTestResult> {
  const name = `.xcpb-remote-test-${randomBytes(6).toString('hex')}`;
  const renamed = `${name}.renamed`;
  const steps: RemoteTestStep[] = [];
  const bytes = sizeMiB * MiB;
  const run = async (step: RemoteTestStep['step'], body: () => Promise<number | undefined>) => {
    const start = performance.now();
    try {
      const moved = await body();
      const ms = performance.now() - start;
      steps.push({
        step,
        ok: true,
        ms,
        throughput: moved === undefined ? undefined : moved / MiB / (ms / 1000),
      });
      return true;
    } catch (error) {
      steps.push({ step, ok: false, ms: performance.now() - start, error: (error as Error).message });
      return false;
    }
  };
  const written = createHash('sha256');
  try {
    const ok =
      (await run('write', async () => {
        const write = await remote.createWriteStreamAtomic(name);
        try {
          await pipeline(randomSource(sizeMiB, written), write.stream);
          await write.commit();
        } catch (error) {
          await write.abort();
          throw error;
        }
        return bytes;
      })) &&
      (await run('read', async () => {
        const read = createHash('sha256');
        let n = 0;
        for await (const chunk of await remote.createReadStream(name)) {
          read.update(chunk as Buffer);
          n += (chunk as Buffer).length;
        }
        if (n !== bytes || read.digest('hex') !== written.copy().digest('hex'))
          throw new Error(`read back ${n} bytes that differ from the ${bytes} written`);
        return bytes;
      })) &&
      (await run('ranged read', async () => {
        // 1 MiB from the middle; half the file when it is smaller (`--size 1`), so the range fits.
        const length = Math.min(MiB, Math.floor(bytes / 2));
        const start = Math.floor((bytes - length) / 2);
        let n = 0;
        for await (const chunk of await remote.createReadStream(name, { start, end: start + length - 1 }))
          n += (chunk as Buffer).length;
        if (n !== length) throw new Error(`a ranged read of ${length} bytes returned ${n} bytes`);
        return length;
      })) &&
      (await run('rename', async () => {
        await remote.rename(name, renamed);
        if (!(await remote.exists(renamed)) || (await remote.exists(name)))
          throw new Error('rename did not move the file');
        return undefined;
      }));
    await run('delete', async () => {
      await remote.delete(ok ? renamed : name);
      if (await remote.exists(ok ? renamed : name)) throw new Error('the file is still there after delete');
      return undefined;
    });
  } finally {
    await remote.delete(name).catch(() => {});
    await remote.delete(renamed).catch(() => {});
  }
  return { remoteId: remote.id, ok: steps.length === 5 && steps.every((s) => s.ok), bytes, steps };
}
