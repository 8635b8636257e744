import { vhdChecksum } from './checksum';
import {
  CREATOR_APPLICATION,
  CREATOR_HOST_OS_WI2K,
  CREATOR_VERSION,
  DiskType,
  type DiskTypeValue,
  FEATURES_RESERVED,
  FILE_FORMAT_VERSION,
  FOOTER_COOKIE,
  FOOTER_SIZE,
  HEADER_SIZE,
  NO_DATA_OFFSET,
} from './constants';
import { VhdError } from './errors';
import { computeGeometry, type Geometry } from './geometry';
import { fromVhdTime, toVhdTime } from './time';
import { packUuid, unpackUuid } from './uuid';

/** The 512-byte hard disk footer (spec "Hard Disk Footer Format"). */
export interface VhdFooter {
  features: number;
  fileFormatVersion: number;
  /** Absolute offset of the dynamic header; undefined for fixed disks (0xFFFF…). */
  dataOffset: number | undefined;
  timestamp: Date;
  creatorApplication: string;
  creatorVersion: number;
  creatorHostOs: number;
  originalSize: number;
  currentSize: number;
  geometry: Geometry;
  diskType: DiskTypeValue;
  checksum: number;
  uuid: string;
  savedState: boolean;
  /** blktap's "hidden" flag (byte 85). */
  hidden: boolean;
}

export function makeFooter(opts: {
  size: number;
  diskType: DiskTypeValue;
  uuid: string;
  timestamp?: Date;
  dataOffset?: number;
}): VhdFooter {
  return {
    features: FEATURES_RESERVED,
    fileFormatVersion: FILE_FORMAT_VERSION,
    dataOffset: opts.diskType === DiskType.fixed ? undefined : (opts.dataOffset ?? FOOTER_SIZE),
    timestamp: opts.timestamp ?? new Date(),
    creatorApplication: CREATOR_APPLICATION,
    creatorVersion: CREATOR_VERSION,
    creatorHostOs: CREATOR_HOST_OS_WI2K,
    originalSize: opts.size,
    currentSize: opts.size,
    geometry: computeGeometry(opts.size),
    diskType: opts.diskType,
    checksum: 0,
    uuid: opts.uuid,
    savedState: false,
    hidden: false,
  };
}

export function encodeFooter(f: VhdFooter): Buffer {
  const b = Buffer.alloc(FOOTER_SIZE);
  b.write(FOOTER_COOKIE, 0, 'latin1');
  b.writeUInt32BE(f.features >>> 0, 8);
  b.writeUInt32BE(f.fileFormatVersion >>> 0, 12);
  b.writeBigUInt64BE(f.dataOffset === undefined ? NO_DATA_OFFSET : BigInt(f.dataOffset), 16);
  b.writeUInt32BE(toVhdTime(f.timestamp), 24);
  b.write(f.creatorApplication.padEnd(4, ' ').slice(0, 4), 28, 'latin1');
  b.writeUInt32BE(f.creatorVersion >>> 0, 32);
  b.writeUInt32BE(f.creatorHostOs >>> 0, 36);
  b.writeBigUInt64BE(BigInt(f.originalSize), 40);
  b.writeBigUInt64BE(BigInt(f.currentSize), 48);
  b.writeUInt16BE(f.geometry.cylinders, 56);
  b.writeUInt8(f.geometry.heads, 58);
  b.writeUInt8(f.geometry.sectorsPerTrack, 59);
  b.writeUInt32BE(f.diskType, 60);
  packUuid(f.uuid).copy(b, 68);
  b.writeUInt8(f.savedState ? 1 : 0, 84);
  b.writeUInt8(f.hidden ? 1 : 0, 85);
  b.writeUInt32BE(vhdChecksum(b, 64), 64);
  return b;
}

function safeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new VhdError('BAD_FIELD', `${what} too large: ${v}`);
  return Number(v);
}

/** Decodes and validates a footer; throws VhdError (without file name) on any problem. */
export function decodeFooter(buf: Uint8Array, where = 'footer'): VhdFooter {
  if (buf.length < FOOTER_SIZE) throw new VhdError('TRUNCATED', `${where}: only ${buf.length} bytes`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, FOOTER_SIZE);
  const cookie = b.toString('latin1', 0, 8);
  if (cookie !== FOOTER_COOKIE) {
    throw new VhdError('BAD_COOKIE', `${where}: wrong cookie ${JSON.stringify(cookie)}, expected "conectix"`);
  }
  const checksum = b.readUInt32BE(64);
  const expected = vhdChecksum(b, 64);
  if (checksum !== expected) {
    throw new VhdError(
      'BAD_CHECKSUM',
      `${where}: bad checksum 0x${checksum.toString(16)}, expected 0x${expected.toString(16)}`,
    );
  }
  const fileFormatVersion = b.readUInt32BE(12);
  if (fileFormatVersion !== FILE_FORMAT_VERSION) {
    throw new VhdError(
      'BAD_FIELD',
      `${where}: unsupported file format version 0x${fileFormatVersion.toString(16)}`,
    );
  }
  const diskType = b.readUInt32BE(60);
  if (diskType !== DiskType.fixed && diskType !== DiskType.dynamic && diskType !== DiskType.differencing) {
    throw new VhdError('UNSUPPORTED', `${where}: unsupported disk type ${diskType}`);
  }
  const rawDataOffset = b.readBigUInt64BE(16);
  let dataOffset: number | undefined;
  if (diskType === DiskType.fixed) {
    dataOffset = undefined;
  } else {
    if (rawDataOffset === NO_DATA_OFFSET || rawDataOffset % 512n !== 0n) {
      throw new VhdError('BAD_FIELD', `${where}: invalid data offset ${rawDataOffset}`);
    }
    dataOffset = safeNumber(rawDataOffset, 'data offset');
  }
  const currentSize = safeNumber(b.readBigUInt64BE(48), 'current size');
  return {
    features: b.readUInt32BE(8),
    fileFormatVersion,
    dataOffset,
    timestamp: fromVhdTime(b.readUInt32BE(24)),
    creatorApplication: b.toString('latin1', 28, 32),
    creatorVersion: b.readUInt32BE(32),
    creatorHostOs: b.readUInt32BE(36),
    originalSize: safeNumber(b.readBigUInt64BE(40), 'original size'),
    currentSize,
    geometry: { cylinders: b.readUInt16BE(56), heads: b.readUInt8(58), sectorsPerTrack: b.readUInt8(59) },
    diskType: diskType as DiskTypeValue,
    checksum,
    uuid: unpackUuid(b.subarray(68, 84)),
    savedState: b.readUInt8(84) === 1,
    hidden: b.readUInt8(85) === 1,
  };
}

/** Bytes a dynamic / differencing VHD needs before its BAT at minimum (footer copy + header). */
export const METADATA_START = FOOTER_SIZE + HEADER_SIZE;
