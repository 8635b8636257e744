import { createCipheriv, createHash } from 'node:crypto';

/** Deterministic pseudo-random bytes for (seed, stream index): AES-128-CTR over zeros, fast. */
export function seededBytes(seed: string | number, index: number, length: number): Buffer {
  const key = createHash('sha256').update(`xcpb-sim:${seed}`).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(index >>> 0, 0);
  iv.writeUInt32BE(Math.floor(index / 2 ** 32), 4);
  const c = createCipheriv('aes-128-ctr', key, iv);
  return Buffer.concat([c.update(Buffer.alloc(length)), c.final()]);
}

/** `count` distinct indices in [0, n), chosen deterministically from `seed`, ascending. */
export function seededIndices(seed: string | number, count: number, n: number): number[] {
  const k = Math.min(count, n);
  const bytes = seededBytes(`${seed}:indices`, 0, Math.max(16, k * 8 * 4));
  const chosen = new Set<number>();
  let pos = 0;
  let salt = 1;
  let buf = bytes;
  while (chosen.size < k) {
    if (pos + 4 > buf.length) {
      buf = seededBytes(`${seed}:indices`, salt++, buf.length);
      pos = 0;
    }
    chosen.add(buf.readUInt32BE(pos) % n);
    pos += 4;
  }
  return [...chosen].sort((a, b) => a - b);
}
