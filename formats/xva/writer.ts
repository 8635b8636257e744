import { Readable } from 'node:stream';
import { type CompressionKind, type CompressOptions, compressStream } from '../compression';
import { isZero } from '../vhd/bat';
import { ByteReader } from '../vhd/byte-reader';
import { VHD_BLOCK_SIZE } from '../vhd/constants';
import type { BlockSource } from '../vhd/source';
import { xxhashHex } from './checksum';
import { buildOvaXml, type XvaObject, type XvaVersion } from './ova-xml';
import { TAR_END, tarHeader, tarPadding } from './tar';

export const XVA_CHUNK_SIZE = 1024 * 1024;

/** A disk to put in the XVA: a sparse BlockSource, or a raw byte stream of `size` bytes. */
export type XvaDisk =
  | { ref: string; source: BlockSource }
  | { ref: string; source: Readable; size: number }
  | { ref: string; stream: Readable; size: number };

type NormalDisk = { ref: string; source: BlockSource } | { ref: string; stream: Readable; size: number };

function normalize(d: XvaDisk): NormalDisk {
  if ('stream' in d) return d;
  if (d.source instanceof Readable || typeof (d.source as unknown as Readable).pipe === 'function') {
    const size = (d as { size?: number }).size;
    if (typeof size !== 'number') throw new TypeError(`disk ${d.ref}: a stream source needs its size`);
    return { ref: d.ref, stream: d.source as Readable, size };
  }
  return { ref: d.ref, source: d.source as BlockSource };
}

export interface XvaInput {
  version?: Partial<XvaVersion>;
  /** ova.xml records; every disk's `ref` should be the id of a VDI object here. */
  objects: XvaObject[];
  disks: XvaDisk[];
  compression?: CompressionKind;
  /** level and threads of the compressor (formats/compression.ts defaults otherwise) */
  compressOptions?: CompressOptions;
}

/** Chunk name as XAPI writes it: `Ref:<n>/<8-digit index>`. */
export function chunkName(ref: string, index: number): string {
  return `${ref}/${String(index).padStart(8, '0')}`;
}

/** The chunks to write: all-zero chunks skipped except the first and the last. */
async function* diskChunks(disk: NormalDisk): AsyncGenerator<{ index: number; data: Buffer }> {
  const size = 'source' in disk ? disk.source.size : disk.size;
  const count = Math.ceil(size / XVA_CHUNK_SIZE);
  const keep = (k: number, data: Buffer) => k === 0 || k === count - 1 || !isZero(data);
  if ('source' in disk) {
    const src = disk.source;
    const present = new Set(src.blocks);
    const perBlock = VHD_BLOCK_SIZE / XVA_CHUNK_SIZE;
    let cached: { block: number; data: Buffer } | undefined;
    for (let k = 0; k < count; k++) {
      const block = Math.floor(k / perBlock);
      const len = Math.min(XVA_CHUNK_SIZE, size - k * XVA_CHUNK_SIZE);
      if (!present.has(block)) {
        if (k === 0 || k === count - 1) yield { index: k, data: Buffer.alloc(len) };
        else k = Math.min((block + 1) * perBlock, count - 1) - 1; // skip to the next block, or the last chunk
        continue;
      }
      if (cached?.block !== block) cached = { block, data: await src.readBlock(block) };
      const within = (k % perBlock) * XVA_CHUNK_SIZE;
      const data = cached.data.subarray(within, within + len);
      if (keep(k, data)) yield { index: k, data };
    }
  } else {
    const r = new ByteReader(disk.stream);
    try {
      for (let k = 0; k < count; k++) {
        const len = Math.min(XVA_CHUNK_SIZE, size - k * XVA_CHUNK_SIZE);
        const data = await r.read(len);
        if (data.length < len)
          throw new Error(
            `disk ${disk.ref}: stream ended at ${k * XVA_CHUNK_SIZE + data.length} of ${size} bytes`,
          );
        if (keep(k, data)) yield { index: k, data };
      }
    } finally {
      await r.close();
    }
  }
}

/**
 * The uncompressed XVA as the pieces it is made of (tar headers, chunk data, checksums), for a
 * writer that sends them on as they come (the simulator's `/export`) without a stream's buffering.
 */
export async function* xvaPieces(input: XvaInput): AsyncGenerator<Buffer> {
  const xml = Buffer.from(buildOvaXml({ version: input.version, objects: input.objects }));
  yield tarHeader('ova.xml', xml.length);
  yield xml;
  yield tarPadding(xml.length);
  // XAPI orders disks by the string order of their ids (so Ref:10 comes before Ref:9).
  const disks = input.disks.map(normalize).sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  for (const disk of disks) {
    for await (const { index, data } of diskChunks(disk)) {
      const name = chunkName(disk.ref, index);
      yield tarHeader(name, data.length);
      yield data;
      yield tarPadding(data.length);
      const sum = Buffer.from(xxhashHex(data));
      yield tarHeader(`${name}.xxhash`, sum.length);
      yield sum;
      yield tarPadding(sum.length);
    }
  }
  yield TAR_END;
}

/**
 * An XVA (XAPI export format 2) as a byte stream: tar with `ova.xml` first, then per disk 1 MiB
 * chunks `Ref:<n>/<8 digits>` each followed by its `.xxhash`, then two zero blocks; optionally
 * compressed as a whole (gzip / zstd). One chunk (or one 2 MiB block) in memory at a time.
 */
export function createXvaStream(input: XvaInput): Readable {
  const tar = Readable.from(xvaPieces(input), { objectMode: false, highWaterMark: XVA_CHUNK_SIZE });
  const kind = input.compression ?? 'none';
  if (kind === 'none') return tar;
  const c = compressStream(kind, input.compressOptions);
  tar.on('error', (e) => c.destroy(e));
  return tar.pipe(c);
}
