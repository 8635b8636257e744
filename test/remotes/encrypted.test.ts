// Encryption at rest (remotes/encrypted.ts) on a local folder: the conformance suite, the key check
// (a wrong or malformed key is refused before anything is written), and the bytes on disk in Xen
// Orchestra's layout (IV 12 ‖ AES-256-GCM ciphertext ‖ tag 16; encryption.json plain, metadata.json
// an encrypted canary) decrypted here with node:crypto alone.
import { createDecipheriv } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withEncryption } from '../../remotes/encrypted';
import { createLocalRemote } from '../../remotes/local';
import { openRemote } from '../../remotes/open-remote';
import type { Remote } from '../../remotes/remote';
import { describeRemoteConformance } from './conformance';

const KEY = '0123456789abcdef0123456789ABCDEF';
const OTHER_KEY = 'ffffffffffffffffffffffffffffffff';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'xcpb-enc-'));
}

describeRemoteConformance(
  'local encrypted (AES-256-GCM)',
  async () => {
    const root = await tempDir();
    const remote = withEncryption(createLocalRemote({ id: 'vault', root }), async () => KEY);
    return {
      remote,
      seed: remote,
      vanish: () => rm(root, { recursive: true, force: true }),
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  },
  { writable: true },
);

/** XO's decryptData, written again from its documented layout. */
function decryptLikeXo(file: Buffer, key: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', Buffer.from(key), file.subarray(0, 12));
  decipher.setAuthTag(file.subarray(file.length - 16));
  return Buffer.concat([decipher.update(file.subarray(12, file.length - 16)), decipher.final()]);
}

describe('encrypted remote', () => {
  let root: string;
  let remote: Remote;
  beforeEach(async () => {
    root = await tempDir();
    remote = withEncryption(createLocalRemote({ id: 'vault', root }), async () => KEY);
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it("writes Xen Orchestra's layout: settings in clear, a canary and every file IV ‖ ciphertext ‖ tag", async () => {
    await remote.writeFileAtomic('xo-vm-backups/vm/20260101T000000Z.json', '{"mode":"full"}');
    const write = await remote.createWriteStreamAtomic('xo-vm-backups/vm/20260101T000000Z.xva');
    await pipeline(Readable.from([Buffer.alloc(3000, 7), Buffer.alloc(5, 8)]), write.stream);
    await write.commit();

    expect(JSON.parse(await readFile(path.join(root, 'encryption.json'), 'utf8'))).toEqual({
      algorithm: 'aes-256-gcm',
    });
    const canary = JSON.parse(
      decryptLikeXo(await readFile(path.join(root, 'metadata.json')), KEY).toString(),
    );
    expect(canary.random).toMatch(/^[0-9a-f-]{36}$/);
    const json = await readFile(path.join(root, 'xo-vm-backups/vm/20260101T000000Z.json'));
    expect(json.length).toBe('{"mode":"full"}'.length + 28);
    expect(decryptLikeXo(json, KEY).toString()).toBe('{"mode":"full"}');
    const xva = decryptLikeXo(await readFile(path.join(root, 'xo-vm-backups/vm/20260101T000000Z.xva')), KEY);
    expect(xva.equals(Buffer.concat([Buffer.alloc(3000, 7), Buffer.alloc(5, 8)]))).toBe(true);
    expect((await remote.stat('xo-vm-backups/vm/20260101T000000Z.xva')).size).toBe(3005);
    expect(await remote.list('')).toEqual(['xo-vm-backups']);
  });

  it('refuses a wrong key before any write, and writes nothing', async () => {
    await remote.writeFileAtomic('a.json', '{}');
    const before = (await readdir(root, { recursive: true })).sort();
    const wrong = withEncryption(createLocalRemote({ id: 'vault', root }), async () => OTHER_KEY);
    for (const attempt of [
      () => wrong.writeFileAtomic('b.json', '{}'),
      () => wrong.createWriteStreamAtomic('c.xva'),
      () => wrong.delete('a.json'),
      () => wrong.checkWritable(),
      () => wrong.readFile('a.json'),
    ]) {
      await expect(attempt()).rejects.toMatchObject({ code: 'BAD_KEY', remoteId: 'vault' });
    }
    await expect(wrong.writeFileAtomic('b.json', '{}')).rejects.toThrow(/wrong encryption key/);
    expect((await readdir(root, { recursive: true })).sort()).toEqual(before);
    expect((await remote.readFile('a.json')).toString()).toBe('{}');
  });

  it('refuses a key that is not 32 bytes, and a remote that already holds unencrypted files', async () => {
    const short = withEncryption(createLocalRemote({ id: 'vault', root }), async () => 'short');
    await expect(short.writeFileAtomic('x', 'y')).rejects.toMatchObject({ code: 'BAD_KEY' });
    await writeFile(path.join(root, 'plain.txt'), 'not encrypted');
    await expect(remote.writeFileAtomic('x', 'y')).rejects.toThrow(/already holds unencrypted files/);
    expect(await readdir(root)).toEqual(['plain.txt']);
  });

  it('reads a damaged file as an EIO RemoteError, never as wrong data', async () => {
    await remote.writeFileAtomic('f.bin', Buffer.alloc(100, 1));
    const file = await readFile(path.join(root, 'f.bin'));
    file[20] ^= 1;
    await writeFile(path.join(root, 'f.bin'), file);
    await expect(remote.readFile('f.bin')).rejects.toMatchObject({ code: 'EIO', remoteId: 'vault' });
    const stream = await remote.createReadStream('f.bin');
    await expect(Readable.from(stream).toArray()).rejects.toMatchObject({ code: 'EIO' });
  });

  it('is what openRemote builds from encryptionKey (a secret reference)', async () => {
    process.env.XCPB_TEST_ENCRYPTION_KEY = KEY;
    try {
      const opened = openRemote({
        id: 'vault',
        url: `file://${root}`,
        encryptionKey: { env: 'XCPB_TEST_ENCRYPTION_KEY' },
      });
      await opened.writeFileAtomic('z.json', '"z"');
      expect((await remote.readFile('z.json')).toString()).toBe('"z"');
      expect(decryptLikeXo(await readFile(path.join(root, 'z.json')), KEY).toString()).toBe('"z"');
    } finally {
      delete process.env.XCPB_TEST_ENCRYPTION_KEY;
    }
  });
});
