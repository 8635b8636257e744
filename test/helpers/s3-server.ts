// A real S3 server for the tests: versitygw (Apache-2.0, one Go binary, posix backend) built from the
// Go module proxy into the cache on first use, like the Temporal CLI; each test file starts its own
// on a free loopback port with its own folder, and may stop and start it (fault tests).
// `npx tsx test/helpers/s3-server.ts install` builds it ahead of time (.ci/run does).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const VERSITYGW_VERSION = '1.8.0';
const MODULE = 'github.com/versity/versitygw/cmd/versitygw';

export function versitygwPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XCPB_VERSITYGW) return env.XCPB_VERSITYGW;
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'xcpb', `versitygw-${VERSITYGW_VERSION}`, 'versitygw');
}

const executable = (p: string) =>
  access(p, constants.X_OK).then(
    () => true,
    () => false,
  );

/** The cached binary, built with `go install` (Go module proxy only) when missing. */
export async function ensureVersitygw(log: (line: string) => void = () => {}): Promise<string> {
  const bin = versitygwPath();
  if (await executable(bin)) return bin;
  const dir = path.dirname(bin);
  await mkdir(dir, { recursive: true });
  log(`building versitygw ${VERSITYGW_VERSION} into ${dir} (first time only; takes minutes)`);
  const child = spawn('go', ['install', '-ldflags', '-s -w', `${MODULE}@v${VERSITYGW_VERSION}`], {
    env: {
      ...process.env,
      GOBIN: dir,
      CGO_ENABLED: '0',
      GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? 'local',
      GOFLAGS: '-mod=mod',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let tail = '';
  child.stderr!.on('data', (c: Buffer) => {
    tail = (tail + c.toString()).slice(-4000);
  });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  if (code !== 0 || !(await executable(bin)))
    throw new Error(`go install of versitygw failed (exit ${code}):\n${tail}`);
  return bin;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface S3TestServer {
  /** `127.0.0.1:<port>` */
  host: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The posix folder behind the buckets (one sub-folder per bucket). */
  root: string;
  /** Creates a bucket (a folder of the posix backend) and returns its name. */
  createBucket(name?: string): Promise<string>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** stop() and remove its folder. */
  close(): Promise<void>;
}

export async function startS3Server(): Promise<S3TestServer> {
  const bin = await ensureVersitygw();
  const root = await mkdtemp(path.join(os.tmpdir(), 'xcpb-s3-'));
  const port = await freePort();
  const accessKeyId = `xcpb${randomBytes(4).toString('hex')}`;
  const secretAccessKey = randomBytes(16).toString('hex');
  let child: ChildProcess | undefined;
  let running = false;

  const waitUp = async () => {
    for (let i = 0; i < 200; i++) {
      const up = await new Promise<boolean>((resolve) => {
        fetch(`http://127.0.0.1:${port}/`)
          .then(() => resolve(true))
          .catch(() => resolve(false));
      });
      if (up) return;
      if (!running) throw new Error('versitygw exited at start');
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('versitygw did not answer within 10 s');
  };
  const server: S3TestServer = {
    host: `127.0.0.1:${port}`,
    accessKeyId,
    secretAccessKey,
    root,
    async createBucket(name = `b${randomBytes(6).toString('hex')}`) {
      await mkdir(path.join(root, name));
      return name;
    },
    async start() {
      if (running) return;
      child = spawn(bin, ['--port', `127.0.0.1:${port}`, '--quiet', 'posix', root], {
        env: { ...process.env, ROOT_ACCESS_KEY: accessKeyId, ROOT_SECRET_KEY: secretAccessKey },
        stdio: 'ignore',
      });
      running = true;
      child.once('exit', () => {
        running = false;
      });
      await waitUp();
    },
    async stop() {
      const c = child;
      if (!c || !running) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    },
    async close() {
      await server.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

if (process.argv[2] === 'install') {
  console.log(await ensureVersitygw(console.log));
}
