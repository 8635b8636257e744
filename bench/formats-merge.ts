// Merging a delta into its parent vs a plain copy of the same changed bytes + fsync (what `dd` of
// the changed bytes then `sync` costs), in the same run; figures through recordResult.
// node --import tsx bench/formats-merge.ts   (XCPB_BENCH_DISK_GIB=4, XCPB_BENCH_CHANGED_GIB=0.5)
import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { blockCount, createVhdStream, mergeVhdIntoParent, openVhdFile, VHD_BLOCK_SIZE } from '../formats/vhd';
import {
  benchDir,
  envNumber,
  GiB,
  maxRssMiB,
  rate,
  report,
  spreadBlocks,
  syntheticSource,
  time,
} from './formats-lib/common';
import { recordResult } from './lib/results';

const size = Math.round((envNumber('XCPB_BENCH_DISK_GIB', 4) * GiB) / VHD_BLOCK_SIZE) * VHD_BLOCK_SIZE;
const changed = Math.round((envNumber('XCPB_BENCH_CHANGED_GIB', 0.5) * GiB) / VHD_BLOCK_SIZE);
const total = blockCount(size);

const { dir, cleanup } = await benchDir();
try {
  const parentBlocks = spreadBlocks(total, Math.round(total / 2));
  // The delta's blocks: a spread over the whole disk, so about half land on blocks the parent has
  // (merged in place) and half are new (appended).
  const n = Math.min(total, changed);
  const deltaBlocks = [
    ...new Set(spreadBlocks(total, n).map((b, k) => Math.min(total - 1, b + (k % 2)))),
  ].sort((a, b) => a - b);
  const uuid = crypto.randomUUID();
  await pipeline(
    createVhdStream(syntheticSource(size, parentBlocks, 0), { uuid }),
    createWriteStream(path.join(dir, 'a.vhd')),
  );
  const childPath = path.join(dir, 'b.vhd');
  await pipeline(
    createVhdStream(syntheticSource(size, deltaBlocks, 1), {
      parent: { uuid, name: 'a.vhd', timestamp: new Date() },
    }),
    createWriteStream(childPath),
  );
  const bytes = deltaBlocks.length * VHD_BLOCK_SIZE;
  // The setup's writes on disk first: neither measure pays for them.
  execFileSync('sync');
  // Baseline: read the delta's blocks and write them into another file, then fsync.
  const copyFile = path.join(dir, 'copy.bin');
  const copy = await time(async () => {
    const child = await openVhdFile(childPath);
    const out = await open(copyFile, 'w');
    let o = 0;
    for (const i of deltaBlocks) {
      const raw = (await child.readBlockRaw(i))!;
      await out.write(raw.data, 0, raw.data.length, o);
      o += raw.data.length;
    }
    await out.sync();
    await out.close();
    await child.close();
  });
  await unlink(copyFile);
  execFileSync('sync');
  const parent = await openVhdFile(path.join(dir, 'a.vhd'));
  const inPlace = deltaBlocks.filter((i) => parent.hasBlock(i)).length;
  await parent.close();
  const merge = await time(() => mergeVhdIntoParent(childPath));
  report(
    `Merge: ${size / GiB} GiB disk, delta of ${deltaBlocks.length} blocks (${(bytes / GiB).toFixed(2)} GiB; ${inPlace} over parent blocks, ${deltaBlocks.length - inPlace} new)`,
    [
      ['plain copy (baseline)', `${copy.ms.toFixed(0)} ms, ${rate(bytes, copy.ms)}`],
      ['mergeVhdIntoParent', `${merge.ms.toFixed(0)} ms, ${rate(bytes, merge.ms)}`],
      ['ratio merge / copy', `${(merge.ms / copy.ms).toFixed(2)}x`],
      ['peak RSS', `${maxRssMiB().toFixed(0)} MiB`],
    ],
  );
  recordResult({
    bench: 'formats-merge',
    figure: `merge of a ${(bytes / GiB).toFixed(2)} GiB delta (${deltaBlocks.length} blocks) into its parent`,
    value: merge.ms / 1000,
    unit: 's',
    baseline: 'copy of the changed bytes + fsync',
    baselineValue: copy.ms / 1000,
    goal: '≤ 1.3×',
    met: merge.ms <= 1.3 * copy.ms,
  });
} finally {
  await cleanup();
}
