// The local remote's big-file writer: write-behind (chunks taken while one batch is written, the
// producer waiting only while the queue is full), data flushed as it goes when asked; the bytes must
// come out exactly, and a failed write must fail the stream.
import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileWriter } from '../../remotes/file-writer';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'xcpb-file-writer-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FileWriter', () => {
  it('writes every byte in order, whatever the chunks and buffer boundaries', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 0, maxLength: 40 }),
        fc.integer({ min: 1, max: 9 }),
        async (sizes, k) => {
          const chunks = sizes.map((s) => randomBytes(s));
          const file = path.join(dir, `f${n++}`);
          const handle = await open(file, 'wx');
          try {
            // small gathers and flushes so that every path (gathered writes, background flush) runs
            await pipeline(
              Readable.from(chunks),
              new FileWriter(handle, { behind: k * 4096, flushEvery: 3 * 4096 }),
            );
          } finally {
            await handle.close();
          }
          expect((await readFile(file)).equals(Buffer.concat(chunks))).toBe(true);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('takes chunks while a batch is written, and lets the producer go on before the next batch is written', async () => {
    const file = path.join(dir, 'gated');
    const handle = await open(file, 'wx');
    // the real file, each write held until the test lets it go
    const gates: (() => void)[] = [];
    const writes: number[] = [];
    const gated = new Proxy(handle, {
      get(target, key) {
        if (key !== 'writev') return Reflect.get(target, key, target);
        return async (buffers: Buffer[], position: number) => {
          await new Promise<void>((resolve) => gates.push(resolve));
          writes.push(buffers.reduce((n, b) => n + b.length, 0));
          return target.writev(buffers, position);
        };
      },
    }) as FileHandle;
    const behind = 1024 * 1024;
    const writer = new FileWriter(gated, { behind });
    const chunks: Buffer[] = [];
    // a few event-loop turns at most (the writes are held, nothing else takes time)
    const waitFor = async (ok: () => boolean) => {
      for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setImmediate(r));
    };
    try {
      // the first write is held: the writer still takes chunks, up to its queue (plus the stream's buffer)
      let taken = 0;
      for (;;) {
        const chunk = randomBytes(64 * 1024);
        chunks.push(chunk);
        taken += chunk.length;
        if (!writer.write(chunk)) break;
      }
      expect(taken).toBeGreaterThan(behind);
      expect(gates).toHaveLength(1);
      let drained = false;
      writer.once('drain', () => {
        drained = true;
      });
      gates.shift()!(); // the first write (one chunk) ends
      await waitFor(() => gates.length === 1);
      expect(gates).toHaveLength(1);
      gates.shift()!(); // the second (up to half the queue) ends; the third is held
      await waitFor(() => gates.length === 1);
      // the producer may go on although bytes it gave are still being written
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      expect(drained).toBe(true);
      expect(writes.reduce((a, b) => a + b, 0)).toBeLessThan(taken);
      expect(writes[1]).toBeLessThanOrEqual(behind / 2);
      const more = randomBytes(100_000);
      chunks.push(more);
      writer.end(more);
      while (!writer.writableFinished) {
        gates.shift()?.();
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      await handle.close();
    }
    expect((await readFile(file)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('fails the stream when the file cannot be written', async () => {
    const file = path.join(dir, 'read-only');
    await writeFile(file, '');
    const handle = await open(file, 'r'); // writes fail with EBADF
    try {
      const err = await pipeline(
        Readable.from([randomBytes(10_000), randomBytes(10_000)]),
        new FileWriter(handle, { behind: 4096 }),
      ).then(
        () => undefined,
        (e) => e,
      );
      expect(err?.code).toBe('EBADF');
    } finally {
      await handle.close();
    }
  });
});
