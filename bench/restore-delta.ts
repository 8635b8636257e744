/**
 * Restore throughput of a delta chain (one full + N deltas) into the simulator, through the real
 * `importRestoreDisk` activity (chain opened, read as one synthetic VHD, `PUT /import_raw_vdi
 * ?format=vhd`), against a raw copy of the same disk bytes (`PUT /import_raw_vdi?format=raw` of a raw
 * file) in the same run; peak RSS. The simulator runs in a process of its own (`xcpb sim`), as XAPI
 * would: its import work must not share the product's event loop. Figures go through recordResult.
 * Run: npx tsx bench/restore-delta.ts
 * Env: XCPB_BENCH_DISK (virtual size, default 4GiB), XCPB_BENCH_FILL (share of blocks in the full,
 * default 0.75), XCPB_BENCH_DELTAS (default 5), XCPB_BENCH_DELTA_BLOCKS (blocks per delta, default
 * 64), XCPB_BENCH_DIR (data folder, default a temp folder).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRestoreTransferActivities } from '../activities/restore-transfer';
import {
  type BlockSource,
  chainBlockSource,
  createVhdStream,
  openVhdChain,
  VHD_BLOCK_SIZE,
  writeRawFile,
} from '../formats/vhd';
import { openRemote } from '../remotes/open-remote';
import { SimControl } from '../simulator/index';
import { parseSize } from '../simulator/scenario';
import { connectXapi } from '../xapi';
import { recordResult } from './lib/results';

const BLOCK = VHD_BLOCK_SIZE;
const size = Math.ceil(parseSize(process.env.XCPB_BENCH_DISK ?? '4GiB') / BLOCK) * BLOCK;
const fill = Number(process.env.XCPB_BENCH_FILL ?? 0.75);
const deltas = Number(process.env.XCPB_BENCH_DELTAS ?? 5);
const deltaBlocks = Number(process.env.XCPB_BENCH_DELTA_BLOCKS ?? 64);
const count = size / BLOCK;
const mib = (n: number) => (n / 1024 ** 2).toFixed(0);
const rate = (bytes: number, ms: number) => bytes / 1024 ** 2 / (ms / 1000);

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);

/** A source whose listed blocks are random bytes (made on demand, never held). */
function randomSource(blocks: number[]): BlockSource {
  return { size, blocks, readBlock: async () => randomBytes(BLOCK) };
}

/** Wall time, and this process's CPU time (user + system): less noisy on a shared machine. */
async function time<T>(f: () => Promise<T>): Promise<{ ms: number; cpuMs: number; value: T }> {
  const t = performance.now();
  const cpu = process.cpuUsage();
  const value = await f();
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - t, cpuMs: (used.user + used.system) / 1000, value };
}

const dir = await mkdtemp(join(process.env.XCPB_BENCH_DIR ?? tmpdir(), 'xcpb-bench-restore-'));
try {
  const remoteRoot = join(dir, 'remote');
  const chainDir = join(remoteRoot, 'xo-vm-backups', 'vm', 'vdis', 'job', 'disk');
  await mkdir(chainDir, { recursive: true });
  // The chain: a full holding `fill` of the blocks, then deltas of `deltaBlocks` each (spread).
  const made = await time(async () => {
    const full = Array.from({ length: Math.floor(count * fill) }, (_, i) => i);
    const names: string[] = [];
    let parent: { uuid: string; name: string; timestamp: Date } | undefined;
    for (let d = 0; d <= deltas; d++) {
      const blocks =
        d === 0
          ? full
          : [...new Set(Array.from({ length: deltaBlocks }, (_, i) => (i * 7919 + d * 104729) % count))].sort(
              (a, b) => a - b,
            );
      const name = `202601${String(d + 1).padStart(2, '0')}T000000Z.vhd`;
      const uuid = crypto.randomUUID();
      const timestamp = new Date(Date.UTC(2026, 0, 1 + d));
      await pipeline(
        createVhdStream(randomSource(blocks), { uuid, timestamp, parent }),
        createWriteStream(join(chainDir, name)),
      );
      parent = { uuid, name, timestamp };
      names.push(name);
    }
    return names;
  });
  const tip = join(chainDir, made.value.at(-1)!);
  const chain = await openVhdChain(tip);
  const dataBytes = chain.blocks().length * BLOCK;
  const raw = join(dir, 'disk.raw');
  await writeRawFile(chainBlockSource(chain), raw);
  await chain.close();
  console.log(
    `disk ${mib(size)} MiB, chain of ${deltas + 1} files (${mib(dataBytes)} MiB of data), made in ${(made.ms / 1000).toFixed(1)} s`,
  );

  const scenario = join(dir, 'scenario.json');
  await writeFile(
    scenario,
    JSON.stringify({
      pools: [
        {
          id: 'bench',
          credentials: [{ username: 'root', password: 'bench' }],
          srs: [{ id: 'local', name: 'Local', size: size * 3 + 1024 ** 3 }],
          vms: [],
        },
      ],
    }),
  );
  const sim = spawn(
    process.execPath,
    [
      resolve(import.meta.dirname, '../bin/xcpb.mjs'),
      'sim',
      '--scenario',
      scenario,
      '--data-dir',
      join(dir, 'sim'),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const simUrl = await new Promise<string>((ok, fail) => {
    let out = '';
    sim.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /pool bench: (\S+)/.exec(out);
      if (m) ok(m[1]);
    });
    sim.once('exit', (code) => fail(new Error(`xcpb sim exited ${code}`)));
  });
  try {
    const control = new SimControl(simUrl);
    const xapi = await connectXapi({ url: simUrl, username: 'root', password: 'bench' });
    const [sr] = await xapi.call<string[]>('SR.get_by_name_label', 'Local');
    const newVdi = async (name: string) => {
      const ref = await xapi.call<string>('VDI.create', {
        name_label: name,
        SR: sr,
        virtual_size: String(size),
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      });
      return { ref, uuid: await xapi.call<string>('VDI.get_uuid', ref) };
    };
    const remote = openRemote({ id: 'bench', url: `file://${remoteRoot}` });
    const activities = createRestoreTransferActivities(
      async () => xapi,
      () => remote,
    );

    // Baseline: the same disk, raw, straight into a VDI.
    const rawTarget = await newVdi('raw copy');
    const rawSize = (await stat(raw)).size;
    const baseline = await time(() =>
      xapi.putResource('/import_raw_vdi', { vdi: rawTarget.ref, format: 'raw' }, createReadStream(raw), {
        size: rawSize,
      }),
    );
    const rssBefore = peakRss;

    // Restore: the activity, with its heartbeats, in a mock activity context.
    const target = await newVdi('restored');
    const env = new MockActivityEnvironment();
    const restore = await time(
      (): Promise<{ bytes: number }> =>
        env.run(activities.importRestoreDisk, {
          poolId: 'bench',
          backup: { remoteId: 'bench', vmUuid: 'vm', basename: made.value.at(-1)!.replace('.vhd', '') },
          vhdPath: `xo-vm-backups/vm/vdis/job/disk/${made.value.at(-1)}`,
          vdiUuid: target.uuid,
        }),
    );
    const digest = async (uuid: string) => {
      const h = createHash('sha256');
      for await (const c of await control.readVdi(uuid)) h.update(c as Buffer);
      return h.digest('hex');
    };
    const same = (await digest(target.uuid)) === (await digest(rawTarget.uuid));

    console.log(
      `raw copy    (PUT format=raw, ${mib(rawSize)} MiB sent):  ${(baseline.ms / 1000).toFixed(1)} s, ${rate(rawSize, baseline.ms).toFixed(0)} MiB/s of disk`,
    );
    console.log(
      `restore     (chain → one VHD, ${mib(restore.value.bytes)} MiB sent): ${(restore.ms / 1000).toFixed(1)} s, ${rate(rawSize, restore.ms).toFixed(0)} MiB/s of disk, ${rate(dataBytes, restore.ms).toFixed(0)} MiB/s of data`,
    );
    console.log(`restored VDI bytes equal the raw copy's (sha256): ${same}`);
    if (!same) throw new Error('the restored disk differs from the raw copy');
    recordResult({
      bench: 'restore-delta',
      figure: `restore of a full + ${deltas} deltas chain (${mib(size)} MiB disk, ${mib(dataBytes)} MiB data)`,
      value: restore.ms / 1000,
      unit: 's',
      baseline: 'raw PUT of the same disk',
      baselineValue: baseline.ms / 1000,
      goal: '≤ 1.0×',
      met: restore.ms <= baseline.ms,
    });
    recordResult({
      bench: 'restore-delta',
      figure: "restore, the product's CPU time (reading the chain, sending the VHD)",
      value: restore.cpuMs / 1000,
      unit: 's',
      baseline: 'CPU time of the raw PUT (reading a file, sending it)',
      baselineValue: baseline.cpuMs / 1000,
    });
    recordResult({
      bench: 'restore-delta',
      figure: 'restore, peak RSS of the process',
      value: peakRss / 1024 ** 2,
      unit: 'MiB',
      baseline: 'after the raw copy',
      baselineValue: rssBefore / 1024 ** 2,
    });
    await xapi.logout();
  } finally {
    sim.kill('SIGTERM');
    await new Promise((r) => sim.once('exit', r));
  }
} finally {
  clearInterval(sampler);
  await rm(dir, { recursive: true, force: true });
}
