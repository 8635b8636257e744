// The local remote's big-file writer: gathered writes while one is in flight, data
// flushed as it goes; the bytes must come out exactly, and a failed write must fail the stream.
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
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
              new FileWriter(handle, { gather: k * 4096, flushEvery: 3 * 4096 }),
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

  it('fails the stream when the file cannot be written', async () => {
    const file = path.join(dir, 'read-only');
    await writeFile(file, '');
    const handle = await open(file, 'r'); // writes fail with EBADF
    try {
      const err = await pipeline(
        Readable.from([randomBytes(10_000), randomBytes(10_000)]),
        new FileWriter(handle, { gather: 4096 }),
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
