// Encryption at rest, as a decorator of any Remote, in Xen Orchestra's format (@xen-orchestra/fs
// `_encryptor.js`, read for facts): each file is `IV (12 bytes) ‖ ciphertext ‖ auth tag (16 bytes)`,
// AES-256-GCM with the key's 32 UTF-8 bytes used as is; the remote root holds `encryption.json`
// (plain: `{"algorithm":"aes-256-gcm"}`) and `metadata.json` (encrypted `{"random":"<uuid>"}`), the
// canary that proves a key right before anything is written. XO's newer default,
// chacha20-poly1305, has the same layout and is read and written when `encryption.json` names it.
// Files cannot be rewritten in place (one tag per file): no `inPlace`, so merges write anew.
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { type Readable, Transform, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  type AtomicWrite,
  type ByteRange,
  isRemoteError,
  normalizeRemotePath,
  type Remote,
  RemoteError,
  type RemoteStat,
} from './remote';

export const ENCRYPTION_FILE = 'encryption.json';
export const KEY_CHECK_FILE = 'metadata.json';
const ALGORITHMS = ['aes-256-gcm', 'chacha20-poly1305'] as const;
type Algorithm = (typeof ALGORITHMS)[number];
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
/** Bytes an encrypted file has more than its content. */
export const ENCRYPTION_OVERHEAD = IV_LENGTH + TAG_LENGTH;

const cipherOf = (algorithm: Algorithm, key: Buffer, iv: Buffer) =>
  createCipheriv(algorithm as 'aes-256-gcm', key, iv, { authTagLength: TAG_LENGTH });
const decipherOf = (algorithm: Algorithm, key: Buffer, iv: Buffer) =>
  createDecipheriv(algorithm as 'aes-256-gcm', key, iv, { authTagLength: TAG_LENGTH });

export function encryptBuffer(algorithm: Algorithm, key: Buffer, data: Buffer): Buffer {
  const iv = randomBytes(IV_LENGTH);
  const cipher = cipherOf(algorithm, key, iv);
  return Buffer.concat([iv, cipher.update(data), cipher.final(), cipher.getAuthTag()]);
}

export function decryptBuffer(algorithm: Algorithm, key: Buffer, data: Buffer): Buffer {
  if (data.length < ENCRYPTION_OVERHEAD) throw new Error('too short to be an encrypted file');
  const decipher = decipherOf(algorithm, key, data.subarray(0, IV_LENGTH));
  decipher.setAuthTag(data.subarray(data.length - TAG_LENGTH));
  return Buffer.concat([
    decipher.update(data.subarray(IV_LENGTH, data.length - TAG_LENGTH)),
    decipher.final(),
  ]);
}

/** IV first, then ciphertext as it comes, then the tag: constant memory. */
function encryptingStream(algorithm: Algorithm, key: Buffer): Transform {
  const iv = randomBytes(IV_LENGTH);
  const cipher = cipherOf(algorithm, key, iv);
  let started = false;
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      if (!started) {
        started = true;
        this.push(iv);
      }
      callback(null, cipher.update(chunk));
    },
    flush(callback) {
      if (!started) this.push(iv);
      this.push(cipher.final());
      callback(null, cipher.getAuthTag());
    },
  });
}

/** The reverse, holding back the last 16 bytes (the tag); fails at the end if the file was altered. */
function decryptingStream(algorithm: Algorithm, key: Buffer, wrap: (error: Error) => Error): Transform {
  let head = Buffer.alloc(0);
  let decipher: ReturnType<typeof decipherOf> | undefined;
  let tail = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      let data = chunk;
      if (decipher === undefined) {
        head = Buffer.concat([head, data]);
        if (head.length < IV_LENGTH) return callback();
        decipher = decipherOf(algorithm, key, head.subarray(0, IV_LENGTH));
        data = head.subarray(IV_LENGTH);
      }
      const all = tail.length === 0 ? data : Buffer.concat([tail, data]);
      const cut = Math.max(0, all.length - TAG_LENGTH);
      tail = Buffer.from(all.subarray(cut));
      callback(null, cut > 0 ? decipher.update(all.subarray(0, cut)) : undefined);
    },
    flush(callback) {
      try {
        if (decipher === undefined || tail.length < TAG_LENGTH)
          throw new Error('too short to be an encrypted file');
        decipher.setAuthTag(tail);
        callback(null, decipher.final());
      } catch (error) {
        callback(wrap(error as Error));
      }
    },
  });
}

/** Keeps bytes [start, end] (inclusive) of what flows through. */
function slicing(range: ByteRange): Transform {
  let position = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      const from = Math.max(0, range.start - position);
      const to = range.end === undefined ? chunk.length : Math.min(chunk.length, range.end + 1 - position);
      position += chunk.length;
      callback(null, to > from ? chunk.subarray(from, to) : undefined);
    },
  });
}

export function withEncryption(inner: Remote, key: () => Promise<string>): Remote {
  const id = inner.id;
  const fail = (path: string, message: string, cause?: unknown) =>
    new RemoteError(id, path, 'BAD_KEY', message, cause === undefined ? undefined : { cause });

  let keyBytes: Promise<Buffer> | undefined;
  const theKey = () => {
    keyBytes ??= key().then((k) => {
      const bytes = Buffer.from(k, 'utf8');
      if (bytes.length !== 32) throw fail('', `the encryption key must be 32 bytes (got ${bytes.length})`);
      return bytes;
    });
    keyBytes.catch(() => {
      keyBytes = undefined;
    });
    return keyBytes;
  };

  /** The remote's algorithm once its key check passed; undefined while the remote is not encrypted yet. */
  let checked: Promise<Algorithm | undefined> | undefined;
  const check = async (): Promise<Algorithm | undefined> => {
    const k = await theKey();
    let settings: { algorithm?: unknown };
    try {
      settings = JSON.parse((await inner.readFile(ENCRYPTION_FILE)).toString());
    } catch (error) {
      if (isRemoteError(error, 'ENOENT')) return undefined;
      throw error;
    }
    const algorithm = settings.algorithm as Algorithm;
    if (!ALGORITHMS.includes(algorithm))
      throw fail(
        ENCRYPTION_FILE,
        `the remote is encrypted with ${JSON.stringify(settings.algorithm)}, not a supported algorithm`,
      );
    try {
      const canary = JSON.parse(decryptBuffer(algorithm, k, await inner.readFile(KEY_CHECK_FILE)).toString());
      if (typeof canary.random !== 'string') throw new Error('no random field');
    } catch (error) {
      if (isRemoteError(error) && error.code !== 'ENOENT') throw error;
      throw fail(KEY_CHECK_FILE, 'wrong encryption key: the key check file does not decrypt with it', error);
    }
    return algorithm;
  };
  /** check(), once: memoized while it succeeds, tried again after a failure (a key file fixed, a remote back). */
  const checkedAlgorithm = (): Promise<Algorithm | undefined> => {
    if (checked === undefined) {
      checked = check();
      checked.catch(() => {
        checked = undefined;
      });
    }
    return checked;
  };
  const algorithmForReads = async (): Promise<Algorithm> => (await checkedAlgorithm()) ?? 'aes-256-gcm';
  /** Before any write: a proven key, or a remote made encrypted now (only if it holds nothing yet). */
  const algorithmForWrites = async (): Promise<Algorithm> => {
    const known = await checkedAlgorithm();
    if (known !== undefined) return known;
    const present = await inner.list('').catch((error) => {
      if (isRemoteError(error, 'ENOENT')) return [];
      throw error;
    });
    if (present.some((n) => !n.startsWith('.xcpb-write-probe')))
      throw fail(
        '',
        `the remote already holds unencrypted files (${present.slice(0, 3).join(', ')}…): refusing to mix`,
      );
    const k = await theKey();
    await inner.writeFileAtomic(
      KEY_CHECK_FILE,
      encryptBuffer('aes-256-gcm', k, Buffer.from(JSON.stringify({ random: randomUUID() }))),
    );
    await inner.writeFileAtomic(ENCRYPTION_FILE, JSON.stringify({ algorithm: 'aes-256-gcm' }));
    checked = Promise.resolve('aes-256-gcm');
    return 'aes-256-gcm';
  };
  const isOwnFile = (path: string) => {
    const rel = normalizeRemotePath(id, path);
    return rel === ENCRYPTION_FILE || rel === KEY_CHECK_FILE;
  };
  const refuseOwn = (path: string) => {
    if (isOwnFile(path))
      throw new RemoteError(id, path, 'EACCES', 'the encryption settings are not ordinary files');
  };
  const decrypt = async (path: string, data: Buffer): Promise<Buffer> => {
    const algorithm = await algorithmForReads();
    try {
      return decryptBuffer(algorithm, await theKey(), data);
    } catch (error) {
      throw new RemoteError(id, path, 'EIO', 'cannot decrypt: damaged file or not written with this key', {
        cause: error,
      });
    }
  };

  return {
    id,
    url: inner.url,
    async readFile(path) {
      refuseOwn(path);
      return decrypt(path, await inner.readFile(path));
    },
    async createReadStream(path, range) {
      refuseOwn(path);
      const algorithm = await algorithmForReads();
      const k = await theKey();
      const source = await inner.createReadStream(path);
      const plain = decryptingStream(
        algorithm,
        k,
        (error) =>
          new RemoteError(id, path, 'EIO', `cannot decrypt: damaged file or not written with this key`, {
            cause: error,
          }),
      );
      source.on('error', (error) => plain.destroy(error));
      plain.on('error', () => source.destroy());
      source.pipe(plain);
      if (range === undefined) return plain;
      const sliced = slicing(range);
      plain.on('error', (e) => sliced.destroy(e));
      return plain.pipe(sliced) as Readable;
    },
    async writeFileAtomic(path, data) {
      refuseOwn(path);
      const algorithm = await algorithmForWrites();
      await inner.writeFileAtomic(path, encryptBuffer(algorithm, await theKey(), Buffer.from(data)));
    },
    async writeFileExclusive(path, data) {
      refuseOwn(path);
      const algorithm = await algorithmForWrites();
      await inner.writeFileExclusive(path, encryptBuffer(algorithm, await theKey(), Buffer.from(data)));
    },
    async createWriteStreamAtomic(path): Promise<AtomicWrite> {
      refuseOwn(path);
      const algorithm = await algorithmForWrites();
      const write = await inner.createWriteStreamAtomic(path);
      const cipher = encryptingStream(algorithm, await theKey());
      cipher.pipe(write.stream as Writable);
      cipher.on('error', (e) => write.stream.destroy(e));
      let aborted = false;
      return {
        stream: cipher,
        async commit() {
          if (!aborted) {
            if (!cipher.writableEnded) cipher.end();
            await finished(cipher);
          }
          await write.commit(); // ABORTED after abort(), a no-op when already committed
        },
        async abort() {
          aborted = true;
          cipher.destroy();
          await write.abort();
        },
      };
    },
    async list(dir) {
      const names = await inner.list(dir);
      return normalizeRemotePath(id, dir) === ''
        ? names.filter((n) => n !== ENCRYPTION_FILE && n !== KEY_CHECK_FILE)
        : names;
    },
    async stat(path): Promise<RemoteStat> {
      const s = await inner.stat(path);
      return s.isDirectory ? s : { ...s, size: Math.max(0, s.size - ENCRYPTION_OVERHEAD) };
    },
    exists: (path) => inner.exists(path),
    // Lock folders and times hold no content: XO takes its VM locks on encrypted file remotes too.
    folderLocks: inner.folderLocks,
    async delete(path) {
      refuseOwn(path);
      await algorithmForWrites();
      await inner.delete(path);
    },
    async rename(from, to) {
      refuseOwn(from);
      refuseOwn(to);
      await algorithmForWrites();
      await inner.rename(from, to);
    },
    async copy(from, to) {
      // A file's IV and tag travel with it: the copy decrypts with the same key, unchanged.
      refuseOwn(from);
      refuseOwn(to);
      await algorithmForWrites();
      await inner.copy(from, to);
    },
    async checkWritable() {
      await algorithmForWrites();
      await inner.checkWritable();
    },
  };
}
