// The S3 remote against a real S3 server (versitygw on loopback, test/helpers/s3-server.ts): the
// shared conformance suite, plain and encrypted, under a key prefix, and the faults an object store
// has: an upload cut by its writer, the server killed mid-upload. Never a partial object visible.
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withEncryption } from '../../remotes/encrypted';
import { readOnly } from '../../remotes/readonly';
import type { Remote } from '../../remotes/remote';
import { createS3Remote } from '../../remotes/s3';
import { type S3TestServer, startS3Server } from '../helpers/s3-server';
import { describeRemoteConformance, type RemoteUnderTest } from './conformance';

let server: S3TestServer;
beforeAll(async () => {
  server = await startS3Server();
});
afterAll(() => server?.close());

const TEST_KEY = 'k'.repeat(16) + 'e'.repeat(16);

async function s3UnderTest(prefix = '', encrypted = false): Promise<RemoteUnderTest> {
  await server.start(); // a previous test may have stopped it
  const bucket = await server.createBucket();
  const plain = createS3Remote({
    id: 'offsite',
    url: `s3://${server.host}/${bucket}${prefix}`,
    protocol: 'http',
    credentials: async () => ({ accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }),
    partSize: 5 * 1024 * 1024,
  });
  const remote = encrypted ? withEncryption(plain, async () => TEST_KEY) : plain;
  return { remote, seed: remote, vanish: () => server.stop(), cleanup: () => server.start() };
}

describeRemoteConformance('s3 (versitygw)', () => s3UnderTest(), { writable: true });
describeRemoteConformance('s3 under a key prefix', () => s3UnderTest('/backups/site-a'), { writable: true });
describeRemoteConformance('s3 encrypted (AES-256-GCM)', () => s3UnderTest('', true), { writable: true });
describeRemoteConformance(
  's3 read-only view',
  async () => {
    const t = await s3UnderTest();
    return { ...t, remote: readOnly(t.remote) };
  },
  { writable: false },
);

/** Every object of a bucket, as the server's own folder shows it (nothing hidden by our listing). */
async function objectsOnServer(remote: Remote): Promise<string[]> {
  const bucket = new URL(remote.url).pathname.split('/')[1]!;
  const entries = await readdir(path.join(server.root, bucket), { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(path.join(server.root, bucket), path.join(e.parentPath, e.name)))
    .filter((p) => !p.startsWith('.sgwtmp'))
    .sort();
}

describe('S3 faults: no partial object is ever visible, older backups stay intact', () => {
  const big = () =>
    Readable.from(
      (function* () {
        for (let i = 0; i < 8; i++) yield randomBytes(1024 * 1024);
      })(),
    );

  it('an upload cut by its writer (abort mid-stream) leaves no object, the previous version readable', async () => {
    const { remote } = await s3UnderTest();
    await remote.writeFileAtomic('vm/old.xva', 'older backup');
    await remote.writeFileAtomic('vm/disk.vhd', 'previous');
    const write = await remote.createWriteStreamAtomic('vm/disk.vhd');
    for await (const chunk of big())
      if (!write.stream.write(chunk)) await new Promise((r) => write.stream.once('drain', r));
    await write.abort();
    expect((await remote.readFile('vm/disk.vhd')).toString()).toBe('previous');
    expect((await remote.readFile('vm/old.xva')).toString()).toBe('older backup');
    expect(await objectsOnServer(remote)).toEqual(['vm/disk.vhd', 'vm/old.xva']);
  });

  it('the server killed mid-upload: commit fails with a RemoteError, no object appears after restart', async () => {
    const { remote } = await s3UnderTest();
    await remote.writeFileAtomic('vm/old.xva', 'older backup');
    const write = await remote.createWriteStreamAtomic('vm/new.xva');
    const source = Readable.from(
      (async function* () {
        for (let i = 0; i < 16; i++) {
          if (i === 8) await server.stop();
          yield randomBytes(1024 * 1024);
        }
      })(),
    );
    const outcome = await pipeline(source, write.stream)
      .then(() => write.commit())
      .then(
        () => 'committed',
        (error) => error,
      );
    expect(outcome).toMatchObject({ name: 'RemoteError', remoteId: 'offsite' });
    await write.abort();
    await server.start();
    expect(await remote.exists('vm/new.xva')).toBe(false);
    expect((await remote.readFile('vm/old.xva')).toString()).toBe('older backup');
    expect(await objectsOnServer(remote)).toEqual(['vm/old.xva']);
  });
});
