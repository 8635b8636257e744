import { createHash } from 'node:crypto';
import { xxh64 } from '@node-rs/xxhash';

/** XAPI's chunk checksum: XXH64 with seed 0, as 16 uppercase hex digits (`%016LX`). */
export function xxhashHex(data: Uint8Array): string {
  return xxh64(data, 0n).toString(16).toUpperCase().padStart(16, '0');
}

/** Older exports: `.checksum` members with the SHA-1 hex digest. */
export function sha1Hex(data: Uint8Array): string {
  return createHash('sha1').update(data).digest('hex');
}
