import { STORED_BLOCK_SIZE } from './bat';
import { DiskType, FOOTER_SIZE } from './constants';
import { VhdError } from './errors';
import { decodeFooter } from './footer';
import { openVhdFile, type ReadHandle, type VhdFile } from './reader';

/**
 * Deeper checks than opening: footer copy equal to the trailing footer, blocks not overlapping each
 * other nor the metadata. Throws a VhdError naming the problem; resolves when the file is sound.
 */
export async function checkVhdFile(path: string): Promise<void> {
  const f = await openVhdFile(path);
  try {
    await checkVhd(f);
  } finally {
    await f.close();
  }
}

/** checkVhdFile on an open file (local or read through a remote); leaves it open. */
export async function checkVhd(f: VhdFile<ReadHandle>): Promise<void> {
  const path = f.path;
  if (f.diskType === DiskType.fixed) return;
  const head = Buffer.alloc(FOOTER_SIZE);
  await f.handle.read(head, 0, FOOTER_SIZE, 0);
  let copy: ReturnType<typeof decodeFooter>;
  try {
    copy = decodeFooter(head, 'footer copy');
  } catch (e) {
    if (e instanceof VhdError) throw new VhdError(e.code, e.problem, path);
    throw e;
  }
  if (
    copy.uuid !== f.footer.uuid ||
    copy.currentSize !== f.footer.currentSize ||
    copy.diskType !== f.diskType
  ) {
    throw new VhdError('BAD_FIELD', 'footer copy at offset 0 differs from the trailing footer', path);
  }
  const header = f.header!;
  const metaEnd = Math.max(f.footer.dataOffset! + 1024, header.tableOffset + header.maxTableEntries * 4);
  const spans = f
    .blocks()
    .map((i) => ({ i, o: f.bat!.offset(i)! }))
    .sort((a, b) => a.o - b.o);
  let prev = metaEnd;
  let prevName = 'the metadata';
  for (const s of spans) {
    if (s.o < prev) throw new VhdError('BAT_OVERLAP', `block ${s.i} at ${s.o} overlaps ${prevName}`, path);
    prev = s.o + STORED_BLOCK_SIZE;
    prevName = `block ${s.i}`;
  }
  for (const l of header.parentLocators) {
    if (l.dataOffset + l.dataLength > f.fileSize) {
      throw new VhdError(
        'BAD_FIELD',
        `parent locator data at ${l.dataOffset} is past the end of the file`,
        path,
      );
    }
  }
}
