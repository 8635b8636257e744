import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import {
  autoDecompress,
  type CompressionKind,
  compressStream,
  decompressStream,
  detectCompression,
} from '../../formats/compression';

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

/** Semi-compressible data: random runs and zero runs. */
function sample(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let o = 0; o < size; o += 65536)
    if ((o / 65536) % 3 !== 0) randomBytes(Math.min(65536, size - o)).copy(b, o);
  return b;
}

describe('compression streams', () => {
  for (const kind of ['none', 'gzip', 'zstd'] as CompressionKind[]) {
    it(`${kind}: round-trips, is detected from its first bytes`, async () => {
      const data = sample(5 * 1024 * 1024 + 123);
      const parts: Buffer[] = [];
      for (let o = 0; o < data.length; o += 300_000) parts.push(data.subarray(o, o + 300_000));
      const compressed = await collect(Readable.from(parts).pipe(compressStream(kind)));
      if (kind !== 'none') expect(compressed.length).toBeLessThan(data.length);
      expect(detectCompression(compressed.subarray(0, 4))).toBe(
        kind === 'none' ? detectCompression(data) : kind,
      );
      const back = await collect(Readable.from([compressed]).pipe(decompressStream(kind)));
      expect(back.equals(data)).toBe(true);
      const auto = await autoDecompress(Readable.from([compressed.subarray(0, 2), compressed.subarray(2)]));
      expect(auto.kind).toBe(kind);
      expect((await collect(auto.stream)).equals(data)).toBe(true);
    });
  }

  it('detects magic bytes', () => {
    expect(detectCompression(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(detectCompression(Buffer.from('ova.'))).toBe('none');
    expect(detectCompression(Buffer.alloc(0))).toBe('none');
  });

  it('corrupt zstd and gzip input fail the stream instead of ending it short', async () => {
    const data = sample(2 * 1024 * 1024);
    for (const kind of ['zstd', 'gzip'] as const) {
      const c = await collect(Readable.from([data]).pipe(compressStream(kind)));
      const bad = Buffer.from(c.subarray(0, Math.floor(c.length / 2)));
      bad[bad.length - 10] ^= 0xff;
      await expect(
        pipeline(Readable.from([bad]), decompressStream(kind), async (s) => collect(Readable.from(s))),
      ).rejects.toThrow();
    }
  });

  it('an empty stream round-trips', async () => {
    for (const kind of ['gzip', 'zstd'] as const) {
      const c = await collect(Readable.from([]).pipe(compressStream(kind)));
      const back = await collect(Readable.from([c]).pipe(decompressStream(kind)));
      expect(back.length).toBe(0);
    }
  });
});
