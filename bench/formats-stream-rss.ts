// Peak RSS while streaming a large sparse disk through the VHD writer and back through the stream
// reader, compared with piping the same number of bytes through a PassThrough.
// node --import tsx bench/formats-stream-rss.ts   (XCPB_BENCH_DISK_GIB=20, XCPB_BENCH_DATA_GIB=2)
import { PassThrough, Readable } from 'node:stream';
import { blockCount, createVhdStream, readVhdStream, VHD_BLOCK_SIZE } from '../formats/vhd';
import {
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

const size = Math.round((envNumber('XCPB_BENCH_DISK_GIB', 20) * GiB) / VHD_BLOCK_SIZE) * VHD_BLOCK_SIZE;
const dataBlocks = Math.round((envNumber('XCPB_BENCH_DATA_GIB', 2) * GiB) / VHD_BLOCK_SIZE);
const total = blockCount(size);
const blocks = spreadBlocks(total, Math.min(total, dataBlocks));
const src = syntheticSource(size, blocks);
const bytes = blocks.length * VHD_BLOCK_SIZE;

const rssStart = maxRssMiB();
// Baseline: the same bytes through a PassThrough, consumed chunk by chunk.
const base = await time(async () => {
  async function* gen() {
    for (const i of blocks) yield await src.readBlock(i);
  }
  const p = Readable.from(gen(), { objectMode: false }).pipe(new PassThrough());
  for await (const _ of p) {
  }
});
const rssBaseline = maxRssMiB();
const checkpoints: string[] = [];
const vhd = await time(async () => {
  let n = 0;
  for await (const item of readVhdStream(createVhdStream(src))) {
    if (item.type !== 'block') continue;
    n++;
    if (n % Math.max(1, Math.floor(blocks.length / 4)) === 0) {
      checkpoints.push(`${((n / blocks.length) * 100).toFixed(0)}%: ${maxRssMiB().toFixed(0)} MiB`);
    }
  }
});
report(
  `Streaming RSS: ${size / GiB} GiB sparse disk, ${(bytes / GiB).toFixed(2)} GiB data, VHD writer → VHD stream reader`,
  [
    ['peak RSS at start', `${rssStart.toFixed(0)} MiB`],
    [
      'PassThrough of the same bytes (baseline)',
      `${base.ms.toFixed(0)} ms, ${rate(bytes, base.ms)}, peak RSS ${rssBaseline.toFixed(0)} MiB`,
    ],
    ['VHD write → read', `${vhd.ms.toFixed(0)} ms, ${rate(bytes, vhd.ms)}`],
    ['peak RSS during VHD streaming', checkpoints.join(', ')],
  ],
);
const what = `${size / GiB} GiB sparse disk, ${Number((bytes / GiB).toFixed(2))} GiB data`;
recordResult({
  bench: 'formats-stream-rss',
  figure: `peak RSS, VHD write → read (${what})`,
  value: maxRssMiB(),
  unit: 'MiB',
  baseline: 'peak RSS, PassThrough of the same bytes',
  baselineValue: rssBaseline,
});
recordResult({
  bench: 'formats-stream-rss',
  figure: `VHD write → read (${what})`,
  value: vhd.ms / 1000,
  unit: 's',
  baseline: 'PassThrough of the same bytes',
  baselineValue: base.ms / 1000,
});
