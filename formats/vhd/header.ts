import { vhdChecksum } from './checksum';
import {
  HEADER_COOKIE,
  HEADER_SIZE,
  HEADER_VERSION,
  NO_DATA_OFFSET,
  PlatformCode,
  SECTOR_SIZE,
  VHD_BLOCK_SIZE,
} from './constants';
import { VhdError } from './errors';
import { fromVhdTime, toVhdTime } from './time';
import { NULL_UUID, packUuid, unpackUuid } from './uuid';

export interface ParentLocator {
  platformCode: number;
  /** Space reserved for the platform data, in bytes (the spec says sectors; we normalise). */
  dataSpace: number;
  dataLength: number;
  dataOffset: number;
}

/** The 1024-byte dynamic disk header (spec "Dynamic Disk Header Format"). */
export interface VhdHeader {
  tableOffset: number;
  headerVersion: number;
  maxTableEntries: number;
  blockSize: number;
  checksum: number;
  parentUuid: string;
  parentTimestamp: Date;
  parentUnicodeName: string;
  parentLocators: ParentLocator[];
}

export function makeHeader(opts: {
  tableOffset: number;
  maxTableEntries: number;
  parent?: { uuid: string; timestamp: Date; name: string };
  parentLocators?: ParentLocator[];
}): VhdHeader {
  return {
    tableOffset: opts.tableOffset,
    headerVersion: HEADER_VERSION,
    maxTableEntries: opts.maxTableEntries,
    blockSize: VHD_BLOCK_SIZE,
    checksum: 0,
    parentUuid: opts.parent?.uuid ?? NULL_UUID,
    parentTimestamp: opts.parent?.timestamp ?? new Date(946684800000),
    parentUnicodeName: opts.parent?.name ?? '',
    parentLocators: opts.parentLocators ?? [],
  };
}

export function encodeHeader(h: VhdHeader): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.write(HEADER_COOKIE, 0, 'latin1');
  b.writeBigUInt64BE(NO_DATA_OFFSET, 8);
  b.writeBigUInt64BE(BigInt(h.tableOffset), 16);
  b.writeUInt32BE(h.headerVersion >>> 0, 24);
  b.writeUInt32BE(h.maxTableEntries >>> 0, 28);
  b.writeUInt32BE(h.blockSize >>> 0, 32);
  packUuid(h.parentUuid).copy(b, 40);
  b.writeUInt32BE(toVhdTime(h.parentTimestamp), 56);
  const name = encodeUtf16be(h.parentUnicodeName);
  if (name.length > 512) throw new VhdError('BAD_FIELD', `parent name longer than 256 UTF-16 units`);
  name.copy(b, 64);
  if (h.parentLocators.length > 8) throw new VhdError('BAD_FIELD', 'more than 8 parent locators');
  h.parentLocators.forEach((l, i) => {
    const o = 576 + i * 24;
    b.writeUInt32BE(l.platformCode >>> 0, o);
    // The spec stores the reserved space in sectors.
    b.writeUInt32BE(Math.ceil(l.dataSpace / SECTOR_SIZE), o + 4);
    b.writeUInt32BE(l.dataLength >>> 0, o + 8);
    b.writeBigUInt64BE(BigInt(l.dataOffset), o + 16);
  });
  b.writeUInt32BE(vhdChecksum(b, 36), 36);
  return b;
}

export function decodeHeader(buf: Uint8Array, where = 'dynamic header'): VhdHeader {
  if (buf.length < HEADER_SIZE) throw new VhdError('TRUNCATED', `${where}: only ${buf.length} bytes`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, HEADER_SIZE);
  const cookie = b.toString('latin1', 0, 8);
  if (cookie !== HEADER_COOKIE) {
    throw new VhdError('BAD_COOKIE', `${where}: wrong cookie ${JSON.stringify(cookie)}, expected "cxsparse"`);
  }
  const checksum = b.readUInt32BE(36);
  const expected = vhdChecksum(b, 36);
  if (checksum !== expected) {
    throw new VhdError(
      'BAD_CHECKSUM',
      `${where}: bad checksum 0x${checksum.toString(16)}, expected 0x${expected.toString(16)}`,
    );
  }
  const tableOffset = b.readBigUInt64BE(16);
  if (tableOffset > BigInt(Number.MAX_SAFE_INTEGER) || tableOffset % 512n !== 0n) {
    throw new VhdError('BAD_FIELD', `${where}: invalid table offset ${tableOffset}`);
  }
  const blockSize = b.readUInt32BE(32);
  if (blockSize !== VHD_BLOCK_SIZE) {
    throw new VhdError('UNSUPPORTED', `${where}: block size ${blockSize} (only 2 MiB blocks are supported)`);
  }
  const parentLocators: ParentLocator[] = [];
  for (let i = 0; i < 8; i++) {
    const o = 576 + i * 24;
    const platformCode = b.readUInt32BE(o);
    if (platformCode === PlatformCode.none) continue;
    const space = b.readUInt32BE(o + 4);
    parentLocators.push({
      platformCode,
      // Writers disagree on the unit; like vhd-tool, a value < 512 is sectors, else bytes.
      dataSpace: space < 512 ? space * SECTOR_SIZE : space,
      dataLength: b.readUInt32BE(o + 8),
      dataOffset: Number(b.readBigUInt64BE(o + 16)),
    });
  }
  return {
    tableOffset: Number(tableOffset),
    headerVersion: b.readUInt32BE(24),
    maxTableEntries: b.readUInt32BE(28),
    blockSize,
    checksum,
    parentUuid: unpackUuid(b.subarray(40, 56)),
    parentTimestamp: fromVhdTime(b.readUInt32BE(56)),
    parentUnicodeName: decodeUtf16be(b.subarray(64, 576)),
    parentLocators,
  };
}

export function encodeUtf16be(s: string): Buffer {
  const le = Buffer.from(s, 'utf16le');
  return le.swap16();
}

export function decodeUtf16be(b: Uint8Array): string {
  const copy = Buffer.from(b);
  let end = 0;
  while (end + 1 < copy.length && (copy[end] !== 0 || copy[end + 1] !== 0)) end += 2;
  return copy.subarray(0, end).swap16().toString('utf16le');
}

/** Decodes a parent locator's platform data into a path string (relative or absolute, or file URL). */
export function decodeLocatorData(code: number, data: Uint8Array): string | undefined {
  const b = Buffer.from(data);
  switch (code) {
    case PlatformCode.w2ku:
    case PlatformCode.w2ru:
      return b.toString('utf16le').replace(/\0+$/, '');
    case PlatformCode.macx:
      return b.toString('utf8').replace(/\0+$/, '');
    default:
      return undefined;
  }
}
