/**
 * Remote write paths, each against a baseline measured in the same run (ratios, not absolute times):
 * 1. S3: a delta VHD written through the backup's own remote path (activities/fan-out
 *    `writeToRemotes` with `openVhdWrite`: XO's VHD directory, one object per 2 MiB block, 4 in
 *    flight) vs an `aws s3 cp`-style upload of the same file
 *    with the same SDK (lib-storage `Upload` of a file stream, default settings); a real S3 server
 *    (versitygw on loopback, built like the tests do).
 * 2. Encryption at rest: the same VHD written to an encrypted local folder vs a plain one, then read
 *    back whole through each.
 * Run: npx tsx bench/remotes.ts   Env: XCPB_BENCH_SIZE (default 512MiB), XCPB_BENCH_DIR.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { writeToRemotes } from '../activities/fan-out';
import { createVhdStream, VHD_BLOCK_SIZE } from '../formats/vhd';
import { withEncryption } from '../remotes/encrypted';
import { createLocalRemote } from '../remotes/local';
import type { Remote } from '../remotes/remote';
import { createS3Remote } from '../remotes/s3';
import { openVhdWrite } from '../remotes/vhd-directory';
import { parseSize } from '../simulator/scenario';
import { startS3Server } from '../test/helpers/s3-server';
import { recordResult } from './lib/results';

const size = Math.ceil(parseSize(process.env.XCPB_BENCH_SIZE ?? '512MiB') / VHD_BLOCK_SIZE) * VHD_BLOCK_SIZE;
const rate = (bytes: number, ms: number) => bytes / 1024 ** 2 / (ms / 1000);
const time = async (f: () => Promise<unknown>) => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};

const dir = await mkdtemp(join(process.env.XCPB_BENCH_DIR ?? tmpdir(), 'xcpb-bench-remotes-'));
const s3 = await startS3Server();
try {
  // The delta: a dynamic VHD whose every block is present (random bytes), made once.
  const vhdFile = join(dir, 'delta.vhd');
  const blocks = Array.from({ length: size / VHD_BLOCK_SIZE }, (_, i) => i);
  await pipeline(
    createVhdStream({ size, blocks, readBlock: async () => randomBytes(VHD_BLOCK_SIZE) }),
    createWriteStream(vhdFile),
  );
  const bytes = (await stat(vhdFile)).size;
  const viaRemote = (remote: Remote, path: string, open?: typeof openVhdWrite) =>
    time(async () => {
      const result = await writeToRemotes(
        createReadStream(vhdFile, { highWaterMark: 1024 * 1024 }),
        [remote],
        path,
        () => {},
        undefined,
        undefined, // the fan-out's default stall timeout
        open,
      );
      if (!result.targets[0]!.ok) throw new Error(result.targets[0]!.error);
    });

  // 1. S3
  const bucket = await s3.createBucket();
  const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const s3Remote = createS3Remote({
    id: 'bench',
    url: `s3://${s3.host}/${bucket}`,
    protocol: 'http',
    credentials: async () => credentials,
  });
  const client = new S3Client({
    endpoint: `http://${s3.host}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  const sdkUpload = () =>
    time(() =>
      new Upload({
        client,
        params: { Bucket: bucket, Key: 'cp/delta.vhd', Body: createReadStream(vhdFile) },
      }).done(),
    );
  await sdkUpload(); // warm-up (connections, server caches)
  const baselineS3 = await sdkUpload();
  const ours = await viaRemote(s3Remote, 'xo-vm-backups/vm/vdis/job/disk/20260101T000000Z.vhd', openVhdWrite);

  // 2. Encryption
  const plainRoot = await mkdtemp(join(dir, 'plain-'));
  const vaultRoot = await mkdtemp(join(dir, 'vault-'));
  const plain = createLocalRemote({ id: 'plain', root: plainRoot });
  const vault = withEncryption(createLocalRemote({ id: 'vault', root: vaultRoot }), async () =>
    'k'.repeat(32),
  );
  const plainWrite = await viaRemote(plain, 'd.vhd');
  const vaultWrite = await viaRemote(vault, 'd.vhd');
  const readBack = (remote: Remote) =>
    time(async () => {
      for await (const _ of await remote.createReadStream('d.vhd')) {
      }
    });
  const plainRead = await readBack(plain);
  const vaultRead = await readBack(vault);

  const vhd = `${(bytes / 1024 ** 2).toFixed(0)} MiB VHD`;
  const figures: [string, number, string, number][] = [
    [
      `S3: delta backup write path, fan-out → VHD directory (${vhd})`,
      ours,
      'aws s3 cp-style Upload, same SDK',
      baselineS3,
    ],
    [`local: encrypted write, AES-256-GCM (${vhd})`, vaultWrite, 'plain write', plainWrite],
    [`local: encrypted read back (${vhd})`, vaultRead, 'plain read back', plainRead],
  ];
  for (const [figure, ms, baseline, base] of figures) {
    recordResult({
      bench: 'remotes',
      figure,
      value: ms / 1000,
      unit: 's',
      baseline,
      baselineValue: base / 1000,
    });
    console.log(`    = ${rate(bytes, ms).toFixed(0)} MiB/s; baseline ${rate(bytes, base).toFixed(0)} MiB/s`);
  }
} finally {
  await s3.close();
  await rm(dir, { recursive: true, force: true });
}
