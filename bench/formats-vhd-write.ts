// VHD write of a sparse disk vs a raw write of the same bytes.
// node --import tsx bench/formats-vhd-write.ts     (XCPB_BENCH_DISK_GIB=4, XCPB_BENCH_FILL=0.5)
import { createWriteStream } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { blockCount, createVhdStream, VHD_BLOCK_SIZE } from '../formats/vhd';
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
const fill = envNumber('XCPB_BENCH_FILL', 0.5);
const total = blockCount(size);
const blocks = spreadBlocks(total, Math.round(total * fill));
const src = syntheticSource(size, blocks);
const dataBytes = blocks.length * VHD_BLOCK_SIZE;

const { dir, cleanup } = await benchDir();
try {
  const rawFile = path.join(dir, 'disk.raw');
  const vhdFile = path.join(dir, 'disk.vhd');
  // Baseline: the same blocks written at their offsets in a sparse raw file, then fsync.
  const raw = await time(async () => {
    const fh = await open(rawFile, 'w');
    await fh.truncate(size);
    for (const i of blocks) await fh.write(await src.readBlock(i), 0, VHD_BLOCK_SIZE, i * VHD_BLOCK_SIZE);
    await fh.sync();
    await fh.close();
  });
  await unlink(rawFile);
  const vhd = await time(async () => {
    await pipeline(createVhdStream(src), createWriteStream(vhdFile));
    const fh = await open(vhdFile, 'r');
    await fh.sync();
    await fh.close();
  });
  report(
    `VHD write: ${size / GiB} GiB disk, ${blocks.length}/${total} blocks (${(dataBytes / GiB).toFixed(2)} GiB data)`,
    [
      ['raw write (baseline)', `${raw.ms.toFixed(0)} ms, ${rate(dataBytes, raw.ms)}`],
      ['VHD stream write', `${vhd.ms.toFixed(0)} ms, ${rate(dataBytes, vhd.ms)}`],
      ['peak RSS', `${maxRssMiB().toFixed(0)} MiB`],
    ],
  );
  const disk = `${size / GiB} GiB disk, ${(fill * 100).toFixed(0)}% full`;
  recordResult({
    bench: 'formats-vhd-write',
    figure: `VHD stream write + fsync (${disk})`,
    value: vhd.ms / 1000,
    unit: 's',
    baseline: 'raw write of the same blocks + fsync',
    baselineValue: raw.ms / 1000,
  });
  recordResult({ bench: 'formats-vhd-write', figure: 'peak RSS', value: maxRssMiB(), unit: 'MiB' });
} finally {
  await cleanup();
}
