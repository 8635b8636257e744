// Provides the pinned Temporal server (the production server, not the CLI's dev server) and its SQL
// schema tool, built from the Go module proxy into a cache folder like the CLI
// (`xcpb server install --cluster`), plus the PostgreSQL schema files that ship in the server's
// module. The test/cluster suite and the benchmark run the server with deploy/temporal/cluster.yaml.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { goInstall, type Log, onPath } from './temporal-cli';

const run = promisify(execFile);

export const TEMPORAL_SERVER_VERSION = '1.29.1';
const MODULE = 'go.temporal.io/server';

/** The folder holding deploy/temporal/cluster.yaml (the one settings file of the cluster). */
export const clusterConfigDir = path.resolve(import.meta.dirname, '../deploy/temporal');

export interface TemporalServerBinaries {
  /** `temporal-server` */
  server: string;
  /** `temporal-sql-tool` */
  sql: string;
  /** schema/postgresql/v12 of the server's module: temporal/ and visibility/ with versioned/ */
  postgresSchema: string;
}

export function serverCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(process.env.HOME ?? '/root', '.cache');
  return path.join(base, 'xcpb', `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

async function version(bin: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(bin, ['--version'], { timeout: 20_000 });
    return /version (\S+)/.exec(stdout)?.[1];
  } catch {
    return undefined;
  }
}

/** Finds (or builds, the first time: minutes) the server and the SQL tool; returns their paths. */
export async function ensureTemporalServer(
  log: Log = () => {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<TemporalServerBinaries> {
  const dir = serverCacheDir(env);
  const server = path.join(dir, 'server');
  const sql = path.join(dir, 'sql');
  const missing = [];
  if ((await version(server)) !== TEMPORAL_SERVER_VERSION) missing.push('server');
  if ((await version(sql)) !== TEMPORAL_SERVER_VERSION) missing.push('tools/sql');
  const hint =
    'Install Go >= 1.25 (https://go.dev/dl/, or Debian golang-1.2x) and run `xcpb server install --cluster` again.';
  if (missing.length > 0) {
    log(
      `building the Temporal server ${TEMPORAL_SERVER_VERSION} (${missing.join(', ')}) into ${dir} (first time only; takes minutes)`,
    );
    await goInstall(
      missing.map((m) => `${MODULE}/cmd/${m}@v${TEMPORAL_SERVER_VERSION}`),
      dir,
      env,
      hint,
    );
  } else {
    log(`using the cached build in ${dir}`);
  }
  return { server, sql, postgresSchema: await schemaDir(env, hint) };
}

/** The module's folder in the Go module cache (downloaded by the build; re-fetched if cleaned). */
async function schemaDir(env: NodeJS.ProcessEnv, hint: string): Promise<string> {
  const go = await onPath('go', env);
  if (!go) throw new Error(`The Temporal schema files come from the Go module cache. ${hint}`);
  const { stdout } = await run(go, ['mod', 'download', '-json', `${MODULE}@v${TEMPORAL_SERVER_VERSION}`], {
    env: { ...env, GOFLAGS: '-mod=mod' },
    timeout: 600_000,
    maxBuffer: 1 << 20,
  });
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (!dir)
    throw new Error(`go mod download did not give the folder of ${MODULE}@v${TEMPORAL_SERVER_VERSION}`);
  return path.join(dir, 'schema', 'postgresql', 'v12');
}
