// Reading a whole disk through a VHD chain (full + deltas) vs reading the same disk from a raw file.
// node --import tsx bench/formats-chain-read.ts   (XCPB_BENCH_DISK_GIB=2, XCPB_BENCH_DELTAS=5)
import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  blockCount,
  chainBlockSource,
  createChainStream,
  createVhdStream,
  openVhdChain,
  VHD_BLOCK_SIZE,
  writeRawFile,
} from '../formats/vhd';
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

const size = Math.round((envNumber('XCPB_BENCH_DISK_GIB', 2) * GiB) / VHD_BLOCK_SIZE) * VHD_BLOCK_SIZE;
const deltas = envNumber('XCPB_BENCH_DELTAS', 5);
const total = blockCount(size);

const { dir, cleanup } = await benchDir();
try {
  // full: 60% of blocks; each delta rewrites 10% of the blocks
  let parent: { uuid: string; name: string; timestamp: Date } | undefined;
  const names: string[] = [];
  for (let n = 0; n <= deltas; n++) {
    const blocks =
      n === 0
        ? spreadBlocks(total, Math.round(total * 0.6))
        : spreadBlocks(total, Math.round(total * 0.1), n * 7);
    const name = `d${n}.vhd`;
    const uuid = crypto.randomUUID();
    await pipeline(
      createVhdStream(syntheticSource(size, blocks, n), { uuid, parent }),
      createWriteStream(path.join(dir, name)),
    );
    names.push(name);
    parent = { uuid, name, timestamp: new Date() };
  }
  const tip = path.join(dir, names[names.length - 1]);
  const rawFile = path.join(dir, 'disk.raw');
  {
    const chain = await openVhdChain(tip);
    await writeRawFile(chainBlockSource(chain), rawFile);
    await chain.close();
  }
  const chainForCount = await openVhdChain(tip);
  const present = chainForCount.blocks();
  await chainForCount.close();
  const dataBytes = present.length * VHD_BLOCK_SIZE;
  // Baseline: read the same blocks from the raw file (2 MiB reads, warm cache like the chain files).
  const raw = await time(async () => {
    const fh = await open(rawFile, 'r');
    const buf = Buffer.alloc(VHD_BLOCK_SIZE);
    for (const i of present) await fh.read(buf, 0, VHD_BLOCK_SIZE, i * VHD_BLOCK_SIZE);
    await fh.close();
  });
  const viaChain = await time(async () => {
    const chain = await openVhdChain(tip);
    for (const i of present) await chain.readBlock(i);
    await chain.close();
  });
  const viaStream = await time(async () => {
    const chain = await openVhdChain(tip);
    let n = 0;
    for await (const c of createChainStream(chain)) n += c.length;
    await chain.close();
    return n;
  });
  report(`Chain read: ${size / GiB} GiB disk, 1 full + ${deltas} deltas, ${present.length} blocks present`, [
    ['raw read (baseline)', `${raw.ms.toFixed(0)} ms, ${rate(dataBytes, raw.ms)}`],
    ['chain readBlock', `${viaChain.ms.toFixed(0)} ms, ${rate(dataBytes, viaChain.ms)}`],
    ['chain as one VHD stream', `${viaStream.ms.toFixed(0)} ms, ${rate(dataBytes, viaStream.ms)}`],
    ['peak RSS', `${maxRssMiB().toFixed(0)} MiB`],
  ]);
  const what = `${size / GiB} GiB disk, full + ${deltas} deltas`;
  const baseline = { baseline: 'raw read of the same blocks', baselineValue: raw.ms / 1000, unit: 's' };
  recordResult({
    bench: 'formats-chain-read',
    figure: `chain readBlock (${what})`,
    value: viaChain.ms / 1000,
    ...baseline,
  });
  recordResult({
    bench: 'formats-chain-read',
    figure: `chain as one VHD stream (${what})`,
    value: viaStream.ms / 1000,
    ...baseline,
  });
  recordResult({ bench: 'formats-chain-read', figure: 'peak RSS', value: maxRssMiB(), unit: 'MiB' });
} finally {
  await cleanup();
}
