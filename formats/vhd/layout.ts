import { Bat, batSize, blockCount, STORED_BLOCK_SIZE } from './bat';
import { DiskType, FOOTER_SIZE, HEADER_SIZE, PlatformCode, SECTOR_SIZE, VHD_MAX_SIZE } from './constants';
import { VhdError } from './errors';
import { makeFooter, type VhdFooter } from './footer';
import { makeHeader, type ParentLocator, type VhdHeader } from './header';
import type { ParentRef, VhdIdentity } from './source';
import { newUuid } from './uuid';

/** Where everything goes in a VHD we write: metadata first, then blocks in index order, then the footer. */
export interface VhdLayout {
  footer: VhdFooter;
  header: VhdHeader;
  /** Platform data of the parent locators, to write at their offsets. */
  locatorData: { offset: number; data: Buffer }[];
  bat: Bat;
  /** Offset of the first block (end of metadata). */
  dataStart: number;
  /** Total file length. */
  fileSize: number;
}

export function checkDiskSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new VhdError('BAD_FIELD', `invalid disk size ${size}`);
  if (size % SECTOR_SIZE !== 0) throw new VhdError('BAD_FIELD', `disk size ${size} is not a multiple of 512`);
  if (size > VHD_MAX_SIZE)
    throw new VhdError('BAD_FIELD', `disk size ${size} exceeds the VHD maximum of 2040 GiB`);
}

export function checkBlockList(size: number, blocks: readonly number[]): void {
  const n = blockCount(size);
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i];
    if (!Number.isInteger(b) || b < 0 || b >= n)
      throw new VhdError('BAD_FIELD', `block ${b} outside the disk (${n} blocks)`);
    if (i > 0 && b <= blocks[i - 1]) throw new VhdError('BAD_FIELD', 'block list is not sorted and unique');
  }
}

export function computeLayout(
  size: number,
  blocks: readonly number[],
  opts: VhdIdentity & { parent?: ParentRef } = {},
): VhdLayout {
  checkDiskSize(size);
  checkBlockList(size, blocks);
  const entries = blockCount(size);
  const parentLocators: ParentLocator[] = [];
  const locatorData: { offset: number; data: Buffer }[] = [];
  let offset = FOOTER_SIZE + HEADER_SIZE;
  if (opts.parent) {
    // Like XO: locator 0 is W2KU holding the parent's file name relative to the child, UTF-16LE.
    const data = Buffer.from(opts.parent.name, 'utf16le');
    const space = Math.max(1, Math.ceil(data.length / SECTOR_SIZE)) * SECTOR_SIZE;
    parentLocators.push({
      platformCode: PlatformCode.w2ku,
      dataSpace: space,
      dataLength: data.length,
      dataOffset: offset,
    });
    locatorData.push({ offset, data });
    offset += space;
  }
  const tableOffset = offset;
  const header = makeHeader({ tableOffset, maxTableEntries: entries, parent: opts.parent, parentLocators });
  const bat = Bat.empty(entries);
  const dataStart = tableOffset + batSize(entries);
  let pos = dataStart;
  for (const b of blocks) {
    bat.entries[b] = pos / SECTOR_SIZE;
    pos += STORED_BLOCK_SIZE;
  }
  const footer = makeFooter({
    size,
    diskType: opts.parent ? DiskType.differencing : DiskType.dynamic,
    uuid: opts.uuid ?? newUuid(),
    timestamp: opts.timestamp,
  });
  return { footer, header, locatorData, bat, dataStart, fileSize: pos + FOOTER_SIZE };
}
