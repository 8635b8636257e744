// File-level restore: a 1 GiB file read out of ext4 through a 4-delta VHD chain (what `xcpb files
// get` runs: chain device → partition probe → libext2fs → folder writer), against `dd` of the same
// number of bytes from the file's first extent on the raw disk, and the peak memory of this process.
// node --import tsx bench/files-get.ts   (XCPB_BENCH_FILE_MIB=1024, XCPB_BENCH_DELTAS=4)
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { writeArchive } from '../formats/archive/file-archive';
import { openLocalChainDevice } from '../formats/disk/vhd-chain-device';
import { discoverVolumes, openFilesystem } from '../formats/disk/volumes';
import { blockCount, createVhdStream, openRawBlockSource } from '../formats/vhd';
import { benchDir, envNumber, MiB, maxRssMiB, rate, report, spreadBlocks, time } from './formats-lib/common';
import { recordResult } from './lib/results';

const sh = promisify(execFile);
const fileMiB = envNumber('XCPB_BENCH_FILE_MIB', 1024);
const deltas = envNumber('XCPB_BENCH_DELTAS', 4);

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

const { dir, cleanup } = await benchDir();
try {
  const src = path.join(dir, 'src');
  await mkdir(src);
  const big = path.join(src, 'big.bin');
  const fh = await open(big, 'w');
  const chunk = Buffer.alloc(16 * MiB);
  for (let i = 0; i < fileMiB / 16; i++) await fh.write(randomFillSync(chunk));
  await fh.close();
  const raw = path.join(dir, 'disk.raw');
  const diskSize = Math.ceil((fileMiB * 1.25 + 64) / 2) * 2 * MiB;
  const rawFh = await open(raw, 'w');
  await rawFh.truncate(diskSize);
  await rawFh.close();
  await sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', src, raw]);

  // the chain: a full of the disk, then deltas that each rewrite 10% of its blocks (same bytes)
  const source = await openRawBlockSource(raw);
  const total = blockCount(diskSize);
  let parent: { uuid: string; name: string; timestamp: Date } | undefined;
  for (let n = 0; n <= deltas; n++) {
    const blocks = n === 0 ? source.blocks : spreadBlocks(total, Math.round(total * 0.1), n * 7);
    const uuid = crypto.randomUUID();
    const name = `d${n}.vhd`;
    await pipeline(
      createVhdStream({ ...source, blocks }, { uuid, parent }),
      createWriteStream(path.join(dir, name)),
    );
    parent = { uuid, name, timestamp: new Date() };
  }
  await source.close();

  // baseline: dd of the same number of bytes from where the file starts on the raw disk
  const firstPhysical = Number((await sh('debugfs', ['-R', 'bmap /big.bin 0', raw])).stdout.trim());
  if (!Number.isSafeInteger(firstPhysical) || firstPhysical <= 0)
    throw new Error('debugfs bmap gave no block');
  const skipMiB = Math.floor((firstPhysical * 4096) / MiB);
  const dd = await time(() =>
    sh('dd', [
      `if=${raw}`,
      `of=${path.join(dir, 'dd.out')}`,
      'bs=1M',
      `skip=${skipMiB}`,
      `count=${fileMiB}`,
      'status=none',
    ]),
  );

  const rssBefore = maxRssMiB();
  const get = await time(async () => {
    const dev = await openLocalChainDevice(path.join(dir, `d${deltas}.vhd`));
    try {
      const { volumes } = await discoverVolumes(dev);
      const fs = await openFilesystem(volumes[0]);
      try {
        return await writeArchive(fs, ['/big.bin'], 'folder', path.join(dir, 'out'));
      } finally {
        await fs.close();
      }
    } finally {
      await dev.close();
    }
  });
  const same = (await sha256(path.join(dir, 'out/big.bin'))) === (await sha256(big));
  const bytes = fileMiB * MiB;
  report(`files get of a ${fileMiB} MiB file through a ${deltas}-delta chain (ext4)`, [
    ['dd of the same bytes from the raw disk', `${(dd.ms / 1000).toFixed(2)} s  ${rate(bytes, dd.ms)}`],
    ['files get (chain → ext4 → folder)', `${(get.ms / 1000).toFixed(2)} s  ${rate(bytes, get.ms)}`],
    ['restored file equals the original', String(same)],
    ['peak RSS (whole process, before → after)', `${rssBefore.toFixed(0)} → ${maxRssMiB().toFixed(0)} MiB`],
  ]);
  if (!same) throw new Error('the restored file differs from the original');
  recordResult({
    bench: 'files-get',
    figure: `files get of a ${fileMiB} MiB file through ${deltas} deltas (ext4)`,
    value: get.ms / 1000,
    unit: 's',
    baseline: 'dd of the same bytes from the raw disk',
    baselineValue: dd.ms / 1000,
  });
  recordResult({ bench: 'files-get', figure: 'peak RSS (whole process)', value: maxRssMiB(), unit: 'MiB' });
} finally {
  await cleanup();
}
