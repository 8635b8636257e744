/**
 * Restore throughput of a delta chain (one full + N deltas) into the simulator, through the real
 * `importRestoreDisk` activity (chain opened, read as one synthetic VHD, `PUT /import_raw_vdi
 * ?format=vhd`), against a raw copy of the same disk bytes (`PUT /import_raw_vdi?format=raw` of a raw
 * file) in the same run; peak RSS. Run: npx tsx bench/restore-delta.ts
 * Env: XCPB_BENCH_DISK (virtual size, default 4GiB), XCPB_BENCH_FILL (share of blocks in the full,
 * default 0.75), XCPB_BENCH_DELTAS (default 5), XCPB_BENCH_DELTA_BLOCKS (blocks per delta, default
 * 64), XCPB_BENCH_DIR (data folder, default a temp folder).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { startSimulator } from '../simulator/index';
import { parseSize } from '../simulator/scenario';
import { connectXapi } from '../xapi';

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

async function time<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await f();
  return { ms: performance.now() - t, value };
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

  const sim = await startSimulator({
    dataDir: join(dir, 'sim'),
    scenario: {
      pools: [
        {
          id: 'bench',
          credentials: [{ username: 'root', password: 'bench' }],
          srs: [{ id: 'local', name: 'Local', size: size * 3 + 1024 ** 3 }],
          vms: [],
        },
      ],
    },
  });
  try {
    const pool = sim.pool('bench');
    const xapi = await connectXapi({ url: pool.url, username: pool.username, password: pool.password });
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
      for await (const c of await pool.control.readVdi(uuid)) h.update(c as Buffer);
      return h.digest('hex');
    };
    const same = (await digest(target.uuid)) === (await digest(rawTarget.uuid));

    console.log(
      `raw copy    (PUT format=raw, ${mib(rawSize)} MiB sent):  ${(baseline.ms / 1000).toFixed(1)} s, ${rate(rawSize, baseline.ms).toFixed(0)} MiB/s of disk`,
    );
    console.log(
      `restore     (chain → one VHD, ${mib(restore.value.bytes)} MiB sent): ${(restore.ms / 1000).toFixed(1)} s, ${rate(rawSize, restore.ms).toFixed(0)} MiB/s of disk, ${rate(dataBytes, restore.ms).toFixed(0)} MiB/s of data`,
    );
    console.log(`ratio restore / raw copy (time): ${(restore.ms / baseline.ms).toFixed(2)}×`);
    console.log(`restored VDI bytes equal the raw copy's (sha256): ${same}`);
    console.log(
      `peak RSS: ${mib(peakRss)} MiB (after the raw copy: ${mib(rssBefore)} MiB; the disk is ${mib(size)} MiB)`,
    );
    await xapi.logout();
  } finally {
    await sim.close();
  }
} finally {
  clearInterval(sampler);
  await rm(dir, { recursive: true, force: true });
}
