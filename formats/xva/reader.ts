import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { autoDecompress, type CompressionKind } from '../compression';
import { sha1Hex, xxhashHex } from './checksum';
import { XvaError } from './errors';
import { groupRecords, type OvaXml, parseOvaXml } from './ova-xml';

export type XvaItem =
  | ({ type: 'header'; compression: CompressionKind; records: ReturnType<typeof groupRecords> } & OvaXml)
  | {
      type: 'chunk';
      /** The VDI's Ref:<n>. */
      ref: string;
      index: number;
      /** Where the chunk goes on the disk (skipped chunks were zeros). */
      offset: number;
      data: Buffer;
    };

const MAX_MEMBER = 16 * 1024 * 1024;
const CHUNK_RE = /^(.+)\/(\d{8})$/;

/** A tar member as tar-stream yields it. */
type Entry = AsyncIterable<Buffer> & { header: { name: string; size?: number }; resume(): unknown };

async function readMember(entry: Entry, name: string, file?: string): Promise<Buffer> {
  const size = entry.header.size ?? 0;
  if (size > MAX_MEMBER) {
    entry.resume();
    throw new XvaError('BAD_MEMBER', `member of ${size} bytes is larger than any XVA member should be`, {
      file,
      member: name,
    });
  }
  const parts: Buffer[] = [];
  for await (const c of entry) parts.push(c);
  return Buffer.concat(parts);
}

/**
 * Reads an XVA stream (plain, gzip or zstd, detected from the first bytes): first a header item with
 * ova.xml's records, then each disk chunk, after its checksum member has been verified, with the
 * offset where it belongs (zero chunks are omitted in XVAs). Holds one chunk at a time.
 */
export async function* readXva(input: Readable, opts: { file?: string } = {}): AsyncGenerator<XvaItem> {
  const file = opts.file;
  const { kind, stream } = await autoDecompress(input);
  const extract = tar.extract();
  stream.on('error', (e) => extract.destroy(e));
  stream.pipe(extract as unknown as NodeJS.WritableStream);
  let first = true;
  let completed = false;
  let pending: { name: string; ref: string; index: number; offset: number; data: Buffer } | undefined;
  const disks = new Map<string, { last: number; firstLen: number; offset: number }>();
  try {
    for await (const entry of extract as unknown as AsyncIterable<Entry>) {
      const name = entry.header.name;
      if (first) {
        first = false;
        if (name !== 'ova.xml') {
          entry.resume();
          throw new XvaError('NO_OVA_XML', `first member is ${JSON.stringify(name)}, expected ova.xml`, {
            file,
          });
        }
        const doc = parseOvaXml((await readMember(entry, name, file)).toString('utf8'), file);
        yield { type: 'header', compression: kind, records: groupRecords(doc.objects), ...doc };
        continue;
      }
      const sumKind = name.endsWith('.xxhash') ? 'xxhash' : name.endsWith('.checksum') ? 'sha1' : undefined;
      if (sumKind) {
        const dataName = name.slice(0, name.lastIndexOf('.'));
        const text = (await readMember(entry, name, file)).toString('latin1').trim();
        if (!pending || pending.name !== dataName) {
          throw new XvaError('BAD_MEMBER', 'checksum member without its chunk just before', {
            file,
            member: name,
          });
        }
        const actual = sumKind === 'xxhash' ? xxhashHex(pending.data) : sha1Hex(pending.data);
        if (actual.toLowerCase() !== text.toLowerCase()) {
          throw new XvaError('CHECKSUM_MISMATCH', `${sumKind} is ${actual}, the archive says ${text}`, {
            file,
            member: dataName,
          });
        }
        const { ref, index, offset, data } = pending;
        pending = undefined;
        yield { type: 'chunk', ref, index, offset, data };
        continue;
      }
      const m = CHUNK_RE.exec(name);
      if (!m) {
        // Unknown members (e.g. a legacy checksum table) are skipped.
        entry.resume();
        continue;
      }
      if (pending)
        throw new XvaError('MISSING_CHECKSUM', 'chunk not followed by its checksum', {
          file,
          member: pending.name,
        });
      const ref = m[1];
      const index = Number(m[2]);
      const data = await readMember(entry, name, file);
      let d = disks.get(ref);
      if (!d) {
        d = { last: -1, firstLen: data.length, offset: 0 };
        disks.set(ref, d);
      }
      if (index <= d.last) {
        throw new XvaError('BAD_MEMBER', `chunk index ${index} after ${d.last} (must increase)`, {
          file,
          member: name,
        });
      }
      // Like XAPI's importer: skipped chunks count as first-chunk-sized runs of zeros.
      d.offset += (index - d.last - 1) * d.firstLen;
      pending = { name, ref, index, offset: d.offset, data };
      d.offset += data.length;
      d.last = index;
    }
    completed = true;
  } catch (e) {
    if (e instanceof XvaError) throw e;
    const msg = (e as Error).message ?? String(e);
    throw new XvaError(/unexpected end|premature/i.test(msg) ? 'TRUNCATED' : 'BAD_MEMBER', msg, { file });
  } finally {
    // Stops the input (and a zstd child process) when the consumer stops early or on error;
    // like readVhdStream, an abandoned input is destroyed rather than drained.
    if (!completed) {
      extract.destroy();
      stream.destroy();
      input.destroy();
    }
  }
  if (first) throw new XvaError('NO_OVA_XML', 'empty archive', { file });
  if (pending)
    throw new XvaError('MISSING_CHECKSUM', 'last chunk has no checksum', { file, member: pending.name });
}
