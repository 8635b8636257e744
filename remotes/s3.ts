// A Remote on an S3 bucket (AWS, MinIO, Ceph, versitygw…), with the AWS SDK v3. Objects cannot be
// renamed or rewritten in place, so: every write goes straight to its final key as one PUT or one
// multipart upload, which S3 shows only once complete (never a partial object, the "rename" is the
// completion); rename is a server-side copy then a delete; there is no in-place edit (merges write
// anew, see remotes/vhd-merge). Memory stays bounded: a streamed upload holds `queueSize` parts.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { PassThrough, Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  type AtomicWrite,
  type ByteRange,
  normalizeRemotePath,
  type Remote,
  RemoteError,
  type RemoteErrorCode,
  type RemoteStat,
} from './remote';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3RemoteOptions {
  id: string;
  /** `s3://host[:port]/bucket[/prefix]` */
  url: string;
  region?: string;
  /** Resolved when the first request is signed: the secret never sits in the config object. */
  credentials: () => Promise<S3Credentials>;
  protocol?: 'https' | 'http';
  /** Accept a self-signed certificate (https only). */
  allowUnauthorized?: boolean;
  /** `https://host/bucket/key` (default, what MinIO and most appliances expect) or `https://bucket.host/key`. */
  pathStyle?: boolean;
  /** Part size of streamed uploads (default 16 MiB; S3 allows 10,000 parts, so up to 160 GiB). */
  partSize?: number;
  /** Parts uploaded at once per stream (default 4): memory per stream is about partSize × queueSize. */
  queueSize?: number;
}

/** `s3://host[:port]/bucket/prefix` → its parts; a clear RemoteError when it is not one. */
export function parseS3Url(id: string, url: string): { host: string; bucket: string; prefix: string } {
  const parsed = new URL(url);
  const [bucket = '', ...rest] = parsed.pathname.split('/').filter((s) => s !== '');
  if (parsed.protocol !== 's3:' || parsed.host === '' || bucket === '') {
    throw new RemoteError(
      id,
      '',
      'UNSUPPORTED',
      `invalid S3 URL ${JSON.stringify(url)}: expected s3://host[:port]/bucket[/prefix]`,
    );
  }
  return { host: parsed.host, bucket, prefix: rest.map(decodeURIComponent).join('/') };
}

const NETWORK_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EAI_AGAIN',
]);

/** An SDK failure as the portable RemoteErrorCode. */
function codeOf(error: unknown): RemoteErrorCode {
  const e = error as { name?: string; code?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const name = e?.name ?? e?.Code ?? '';
  const status = e?.$metadata?.httpStatusCode;
  if (name === 'NoSuchBucket') return 'UNAVAILABLE';
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return 'ENOENT';
  if (name === 'PreconditionFailed' || status === 412) return 'EEXIST';
  if (
    name === 'AccessDenied' ||
    name === 'InvalidAccessKeyId' ||
    name === 'SignatureDoesNotMatch' ||
    status === 403
  )
    return 'EACCES';
  if (
    ['QuotaExceeded', 'XMinioStorageFull', 'InsufficientStorage', 'EntityTooLarge'].includes(name) ||
    status === 507
  )
    return 'ENOSPC';
  if (NETWORK_ERRORS.has(e?.code ?? '') || name === 'TimeoutError' || status === 503) return 'UNAVAILABLE';
  if (/no space left|storage full|quota/i.test(String((error as Error)?.message))) return 'ENOSPC';
  return 'EIO';
}

export function createS3Remote(options: S3RemoteOptions): Remote {
  return new S3Remote(options);
}

class S3Remote implements Remote {
  readonly id: string;
  readonly url: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(private readonly options: S3RemoteOptions) {
    this.id = options.id;
    this.url = options.url;
    const { host, bucket, prefix } = parseS3Url(options.id, options.url);
    this.bucket = bucket;
    this.prefix = prefix;
    const protocol = options.protocol ?? 'https';
    this.client = new S3Client({
      endpoint: `${protocol}://${host}`,
      region: options.region ?? 'us-east-1',
      forcePathStyle: options.pathStyle ?? true,
      credentials: options.credentials,
      // Our own checksums are the VHD/XVA formats; newer SDK defaults add trailers some servers refuse.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 32 }),
        httpsAgent: new HttpsAgent({
          keepAlive: true,
          maxSockets: 32,
          rejectUnauthorized: !options.allowUnauthorized,
        }),
        connectionTimeout: 10_000,
      }),
    });
  }

  private key(path: string): { rel: string; key: string } {
    const rel = normalizeRemotePath(this.id, path);
    return { rel, key: [this.prefix, rel].filter((s) => s !== '').join('/') };
  }

  private fail(op: string, rel: string, error: unknown): never {
    if (error instanceof RemoteError) throw error;
    const code = codeOf(error);
    const e = error as { name?: string; message?: string };
    throw new RemoteError(
      this.id,
      rel,
      code,
      `${op} failed: ${e?.name ?? 'Error'}: ${e?.message ?? String(error)}`,
      {
        cause: error,
      },
    );
  }

  private async guard<T>(op: string, rel: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      this.fail(op, rel, error);
    }
  }

  async readFile(path: string): Promise<Buffer> {
    const { rel, key } = this.key(path);
    return this.guard('read', rel, async () => {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    });
  }

  async createReadStream(path: string, range?: ByteRange): Promise<Readable> {
    const { rel, key } = this.key(path);
    return this.guard('open', rel, async () => {
      const Range = range === undefined ? undefined : `bytes=${range.start}-${range.end ?? ''}`;
      try {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range }));
        return res.Body as Readable;
      } catch (error) {
        // A range that starts at or past the end: nothing to read, as from a file (if the object exists).
        if ((error as { name?: string }).name === 'InvalidRange') return Readable.from([]);
        throw error;
      }
    });
  }

  async writeFileAtomic(path: string, data: Buffer | string): Promise<void> {
    const { rel, key } = this.key(path);
    if (rel === '') throw new RemoteError(this.id, rel, 'INVALID_PATH', 'cannot write the root');
    await this.guard('write', rel, () =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: data })),
    );
  }

  async writeFileExclusive(path: string, data: Buffer | string): Promise<void> {
    const { rel, key } = this.key(path);
    // Conditional write (If-None-Match: *): the server refuses with 412 if the key exists.
    await this.guard('create', rel, () =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: data, IfNoneMatch: '*' })),
    );
  }

  async createWriteStreamAtomic(path: string): Promise<AtomicWrite> {
    const { rel, key } = this.key(path);
    if (rel === '') throw new RemoteError(this.id, rel, 'INVALID_PATH', 'cannot write the root');
    // The upload reads `body`; the caller writes `stream`, whose end does NOT end `body`: the last
    // part (or the single PUT of a small file) goes out only in commit(), so a write the caller ends
    // and then aborts never publishes anything.
    const body = new PassThrough({ highWaterMark: 1024 * 1024 });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body },
      partSize: this.options.partSize ?? 16 * 1024 * 1024,
      queueSize: this.options.queueSize ?? 4,
      leavePartsOnError: false,
    });
    // Started now so the body is consumed as it is written; its outcome is read by commit().
    const done = upload.done();
    done.catch(() => {});
    const stream = new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        if (body.write(chunk)) callback();
        else body.once('drain', () => callback());
      },
      final(callback) {
        callback();
      },
    });
    body.on('error', (error) => stream.destroy(error));
    let state: 'open' | 'committed' | 'aborted' = 'open';
    return {
      stream,
      commit: async () => {
        if (state === 'committed') return;
        if (state === 'aborted') throw new RemoteError(this.id, rel, 'ABORTED', 'commit after abort');
        if (!stream.writableEnded) stream.end();
        await this.guard('write', rel, async () => {
          await finished(stream);
          body.end();
          await done;
        });
        state = 'committed';
      },
      abort: async () => {
        if (state !== 'open') return;
        state = 'aborted';
        // Aborting the multipart upload discards its parts: no object ever appears under `key`.
        await upload.abort().catch(() => {});
        stream.destroy();
        body.destroy();
        await done.catch(() => {});
      },
    };
  }

  async list(dir: string): Promise<string[]> {
    const { rel, key } = this.key(dir);
    const prefix = key === '' ? '' : `${key}/`;
    const names = await this.guard('list', rel, async () => {
      const out: string[] = [];
      let ContinuationToken: string | undefined;
      do {
        const res = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            Delimiter: '/',
            ContinuationToken,
          }),
        );
        for (const p of res.CommonPrefixes ?? []) out.push(p.Prefix!.slice(prefix.length, -1));
        for (const o of res.Contents ?? []) out.push(o.Key!.slice(prefix.length));
        ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (ContinuationToken);
      return out.filter((n) => n !== '');
    });
    if (names.length === 0 && rel !== '')
      throw new RemoteError(this.id, rel, 'ENOENT', 'list failed: no such directory');
    return [...new Set(names)].sort();
  }

  async stat(path: string): Promise<RemoteStat> {
    const { rel, key } = this.key(path);
    return this.guard('stat', rel, async () => {
      if (rel !== '') {
        try {
          const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
          return {
            size: head.ContentLength ?? 0,
            mtimeMs: head.LastModified?.getTime() ?? 0,
            isDirectory: false,
          };
        } catch (error) {
          if (codeOf(error) !== 'ENOENT') throw error;
        }
      }
      // No object: a "directory" if any key lies below it.
      const res = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: key === '' ? '' : `${key}/`, MaxKeys: 1 }),
      );
      if (rel === '' || (res.KeyCount ?? 0) > 0) return { size: 0, mtimeMs: 0, isDirectory: true };
      throw new RemoteError(this.id, rel, 'ENOENT', 'stat failed: no such file');
    });
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (error) {
      if (error instanceof RemoteError && error.code === 'ENOENT') return false;
      throw error;
    }
  }

  async delete(path: string): Promise<void> {
    const { rel, key } = this.key(path);
    if (rel === '') throw new RemoteError(this.id, rel, 'INVALID_PATH', 'cannot delete the root');
    // S3 answers 204 whether the key existed or not: already gone is success.
    await this.guard('delete', rel, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })),
    );
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.key(from);
    const target = this.key(to);
    await this.guard('rename', source.rel, async () => {
      await this.copyObject(source.key, target.key);
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: source.key }));
    });
  }

  async copy(from: string, to: string): Promise<void> {
    const source = this.key(from);
    const target = this.key(to);
    await this.guard('copy', source.rel, () => this.copyObject(source.key, target.key));
  }

  private copyObject(from: string, to: string) {
    return this.client.send(
      new CopyObjectCommand({
        Bucket: this.bucket,
        Key: to,
        CopySource: `${this.bucket}/${encodeURIComponent(from).replace(/%2F/g, '/')}`,
      }),
    );
  }

  async checkWritable(): Promise<void> {
    const probe = `.xcpb-write-probe-${process.pid}-${Math.random().toString(16).slice(2, 14)}`;
    await this.writeFileAtomic(probe, 'xcpb');
    await this.delete(probe);
  }
}
