// Deltas as Xen Orchestra's VHD directories on a real S3 server (versitygw on loopback): written from
// a VHD stream, merged by retention with block objects copied by the server (the bytes this process
// sends and receives are counted: metadata only, for a 1 GiB delta), resumed after a crash mid-merge
// with the kept backup readable throughout, and byte-exact after.
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVhdStream, type ParentRef, VHD_BLOCK_SIZE } from '../../formats/vhd';
import { backupPaths, vmBackupDir } from '../../remotes/backup-paths';
import { BackupRepository } from '../../remotes/backup-repository';
import type { Remote } from '../../remotes/remote';
import { createS3Remote } from '../../remotes/s3';
import { openVhdWrite } from '../../remotes/vhd-directory';
import { type S3TestServer, startS3Server } from '../helpers/s3-server';
import { DAY, deltaMetadata, JOB, T0, VM } from './fixtures';

let server: S3TestServer;
beforeAll(async () => {
  server = await startS3Server();
});
afterAll(() => server?.close());

/** Counts the bytes that pass through this process, both ways, and can fail the n-th copy. */
function metered(inner: Remote) {
  const count = { sent: 0, received: 0, copies: 0, failCopyAt: -1 };
  const size = (d: Buffer | string) => (typeof d === 'string' ? Buffer.byteLength(d) : d.length);
  const remote: Remote = {
    ...Object.fromEntries(
      (['list', 'stat', 'exists', 'delete', 'rename', 'checkWritable'] as const).map((k) => [
        k,
        (...a: unknown[]) => (inner[k] as (...x: unknown[]) => unknown)(...a),
      ]),
    ),
    id: inner.id,
    url: inner.url,
    async readFile(p) {
      const b = await inner.readFile(p);
      count.received += b.length;
      return b;
    },
    async createReadStream(p, r) {
      const s = await inner.createReadStream(p, r);
      s.on('data', (c: Buffer) => {
        count.received += c.length;
      });
      return s;
    },
    async writeFileAtomic(p, d) {
      count.sent += size(d);
      return inner.writeFileAtomic(p, d);
    },
    async writeFileExclusive(p, d) {
      count.sent += size(d);
      return inner.writeFileExclusive(p, d);
    },
    async createWriteStreamAtomic(p) {
      const w = await inner.createWriteStreamAtomic(p);
      const original = w.stream.write.bind(w.stream);
      w.stream.write = ((chunk: Buffer, ...rest: never[]) => {
        count.sent += chunk.length;
        return original(chunk, ...rest);
      }) as typeof w.stream.write;
      return w;
    },
    async copy(from, to) {
      if (count.copies++ === count.failCopyAt) throw new Error('crash (injected) during a block copy');
      return inner.copy(from, to);
    },
  } as Remote;
  return { remote, count };
}

const blockOf = (day: number, index: number) => Buffer.alloc(VHD_BLOCK_SIZE, (day * 31 + index) % 251);

/** Day 0: a full of `base` blocks; day i: a delta rewriting blocks [from, from + n). */
async function writeChain(remote: Remote, days: { from: number; n: number }[], diskBlocks: number) {
  const repository = new BackupRepository(remote);
  let parent: ParentRef | undefined;
  for (const [day, { from, n }] of days.entries()) {
    const t = T0 + day * DAY;
    const paths = backupPaths(VM, t);
    const uuid = `00000000-0000-4000-8000-${String(day).padStart(12, '0')}`;
    const blocks = Array.from({ length: n }, (_, i) => from + i);
    const source = {
      size: diskBlocks * VHD_BLOCK_SIZE,
      blocks,
      readBlock: async (i: number) => blockOf(day, i),
    };
    const write = await openVhdWrite(remote, paths.vhd(JOB, 'vdi-a'));
    await pipeline(createVhdStream(source, { uuid, timestamp: new Date(t), parent }), write.stream);
    await write.commit();
    await repository.writeMetadata(
      deltaMetadata(t, { 'OpaqueRef:disk-a': { vdiUuid: 'vdi-a', differencing: parent !== undefined } }),
    );
    parent = { uuid, name: `${paths.basename}.vhd`, timestamp: new Date(t) };
  }
}

/** Expected content of block i after `days`. */
function expected(days: { from: number; n: number }[], upTo: number, i: number): Buffer {
  for (let d = upTo; d >= 0; d--)
    if (i >= days[d]!.from && i < days[d]!.from + days[d]!.n) return blockOf(d, i);
  return Buffer.alloc(VHD_BLOCK_SIZE);
}

async function expectDisk(
  remote: Remote,
  ts: string,
  days: { from: number; n: number }[],
  day: number,
  diskBlocks: number,
) {
  const repository = new BackupRepository(remote);
  const chain = await repository.openChain(`${vmBackupDir(VM)}/vdis/${JOB}/vdi-a/${ts}.alias.vhd`);
  try {
    for (let i = 0; i < diskBlocks; i++) {
      const got = await chain.readBlock(i);
      if (!got.equals(expected(days, day, i))) throw new Error(`${ts}: block ${i} differs`);
    }
  } finally {
    await chain.close();
  }
}

async function s3(): Promise<Remote> {
  return createS3Remote({
    id: 'offsite',
    url: `s3://${server.host}/${await server.createBucket()}/xcpb`,
    protocol: 'http',
    credentials: async () => ({ accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }),
  });
}

const policy = (keep: number) => ({
  scheduleId: 'nightly',
  mode: 'delta' as const,
  remote: keep,
  timeZone: 'UTC',
});

describe('VHD directories on S3', () => {
  it('merging a 1 GiB delta moves no block data through the worker; the kept point reads back exactly', {
    timeout: 600_000,
  }, async () => {
    const DISK = 640; // blocks: 1.25 GiB disk
    const days = [
      { from: 0, n: 64 },
      { from: 64, n: 512 }, // the 1 GiB delta
      { from: 10, n: 4 },
    ];
    const { remote, count } = metered(await s3());
    await writeChain(remote, days, DISK);
    const sentBefore = count.sent;
    expect(sentBefore).toBeGreaterThan(1024 ** 3); // the chain itself did go through
    count.sent = 0;
    count.received = 0;
    const report = await new BackupRepository(remote).applyRetention(VM, policy(2));
    expect(report.done.filter((d) => d.startsWith('merge'))).toHaveLength(1);
    expect(count.copies).toBe(512 + 0); // the delta's blocks, copied by the server
    expect(count.sent + count.received).toBeLessThan(256 * 1024);

    const entries = await new BackupRepository(remote).listVmBackups(VM);
    expect(entries.map((e) => [e.basename, e.status])).toEqual([
      [backupPaths(VM, T0 + DAY).basename, 'ok'],
      [backupPaths(VM, T0 + 2 * DAY).basename, 'ok'],
    ]);
    const dir = `${vmBackupDir(VM)}/vdis/${JOB}/vdi-a`;
    expect((await remote.list(dir)).filter((n) => !n.startsWith('.'))).toEqual([
      `${backupPaths(VM, T0 + DAY).basename}.alias.vhd`,
      `${backupPaths(VM, T0 + 2 * DAY).basename}.alias.vhd`,
      'data',
    ]);
    expect(await remote.list(`${dir}/data`)).toEqual([
      `${backupPaths(VM, T0).basename}.vhd`, // the full's data, now named by day 1's alias
      `${backupPaths(VM, T0 + 2 * DAY).basename}.vhd`,
    ]);
    await expectDisk(remote, backupPaths(VM, T0 + DAY).basename, days, 1, DISK);
    await expectDisk(remote, backupPaths(VM, T0 + 2 * DAY).basename, days, 2, DISK);
  });

  it('a crash mid-merge: the kept backups stay readable, the next retention finishes the merge', async () => {
    const DISK = 16;
    const days = [
      { from: 0, n: 8 },
      { from: 4, n: 6 },
      { from: 2, n: 3 },
    ];
    const { remote, count } = metered(await s3());
    await writeChain(remote, days, DISK);
    const [, ts1, ts2] = [0, 1, 2].map((d) => backupPaths(VM, T0 + d * DAY).basename);
    count.failCopyAt = 3;
    await expect(new BackupRepository(remote).applyRetention(VM, policy(2))).rejects.toThrow(
      /crash \(injected\)/,
    );
    await expectDisk(remote, ts1!, days, 1, DISK);
    await expectDisk(remote, ts2!, days, 2, DISK);
    await new BackupRepository(remote).applyRetention(VM, policy(2));
    const entries = await new BackupRepository(remote).listVmBackups(VM);
    expect(entries.map((e) => [e.basename, e.status])).toEqual([
      [ts1, 'ok'],
      [ts2, 'ok'],
    ]);
    expect(entries[0]!.metadata?.mode === 'delta' && entries[0]!.metadata.isVhdDifferencing).toEqual({
      'OpaqueRef:disk-a.vhd': false,
    });
    await expectDisk(remote, ts1!, days, 1, DISK);
    await expectDisk(remote, ts2!, days, 2, DISK);
    const dir = `${vmBackupDir(VM)}/vdis/${JOB}/vdi-a`;
    expect((await remote.list(dir)).filter((n) => n.startsWith('.'))).toEqual([]); // no state left
  });
});
