// Provides the pinned Temporal CLI (which carries the dev server) without any download but the Go
// module proxy: a matching `temporal` on the PATH, else a cached build, else a fresh `go install`.
import { execFile, spawn } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const TEMPORAL_CLI_VERSION = '1.5.1';
const MODULE = 'github.com/temporalio/cli/cmd/temporal';

export type Log = (line: string) => void;

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'xcpb', `temporal-${TEMPORAL_CLI_VERSION}`);
}

/** The version a `temporal` binary reports, or undefined when it cannot be run. */
export async function temporalVersion(bin: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(bin, ['--version'], { timeout: 20_000 });
    return /temporal version (\S+)/.exec(stdout)?.[1];
  } catch {
    return undefined;
  }
}

export async function onPath(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/**
 * Finds or builds the pinned CLI and returns its path. Order: TEMPORAL_CLI_PATH, `temporal` on the
 * PATH with the pinned version, the cache, then `go install` into the cache.
 */
export async function ensureTemporalCli(
  log: Log = () => {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (env.TEMPORAL_CLI_PATH) {
    const version = await temporalVersion(env.TEMPORAL_CLI_PATH);
    if (!version)
      throw new Error(`TEMPORAL_CLI_PATH=${env.TEMPORAL_CLI_PATH} cannot be run as a Temporal CLI`);
    log(`using TEMPORAL_CLI_PATH (temporal ${version})`);
    return env.TEMPORAL_CLI_PATH;
  }
  const fromPath = await onPath('temporal', env);
  if (fromPath && (await temporalVersion(fromPath)) === TEMPORAL_CLI_VERSION) {
    log(`using ${fromPath} from the PATH`);
    return fromPath;
  }
  const cached = path.join(cacheDir(env), 'temporal');
  if ((await temporalVersion(cached)) === TEMPORAL_CLI_VERSION) {
    log(`using the cached build ${cached}`);
    return cached;
  }
  await buildWithGo(cacheDir(env), log, env);
  if ((await temporalVersion(cached)) !== TEMPORAL_CLI_VERSION) {
    throw new Error(`the build finished but ${cached} does not report version ${TEMPORAL_CLI_VERSION}`);
  }
  return cached;
}

async function buildWithGo(dir: string, log: Log, env: NodeJS.ProcessEnv): Promise<void> {
  log(`building temporal ${TEMPORAL_CLI_VERSION} into ${dir} (first time only; takes minutes)`);
  await goInstall(
    [
      '-ldflags',
      `-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`,
      `${MODULE}@v${TEMPORAL_CLI_VERSION}`,
    ],
    dir,
    env,
    `Install Go >= 1.25 (https://go.dev/dl/) and run \`xcpb server install\` again, or set TEMPORAL_CLI_PATH to a temporal ${TEMPORAL_CLI_VERSION} binary.`,
  );
}

/** `go install <args>` with GOBIN = dir, offline but for the Go module proxy. */
export async function goInstall(
  args: string[],
  dir: string,
  env: NodeJS.ProcessEnv,
  noGoHint: string,
): Promise<void> {
  const go = await onPath('go', env);
  if (!go) throw new Error(`No Go toolchain on the PATH to build with. ${noGoHint}`);
  await mkdir(dir, { recursive: true });
  const child = spawn(go, ['install', ...args], {
    env: {
      ...env,
      GOBIN: dir,
      CGO_ENABLED: '0',
      GOTOOLCHAIN: env.GOTOOLCHAIN ?? 'local',
      GOFLAGS: '-mod=mod',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  child.stderr.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4000);
  });
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  if (code !== 0) {
    throw new Error(
      `go install ${args.at(-1)} failed (exit ${code}). It needs the Go module proxy to be reachable ` +
        `(GOPROXY) and Go >= 1.25. Last output:\n${tail}`,
    );
  }
}
