// The production topology without containers: Debian's PostgreSQL in a folder of its own on a free
// port, the Temporal server built from the Go module proxy with its schema created by its SQL tool,
// configured by deploy/temporal/cluster.yaml (the file docker-compose.yml mounts), TLS on the frontend
// with client certificates required, from a CA made here with openssl. Used by test/cluster/ and by
// bench/backup-cluster.ts. Nothing is skipped: a missing piece is an error that says what to install.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { access, chown, mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { connectClient, type TemporalTarget } from '../../client/connect';
import { freePort } from '../../server/dev-server';
import {
  clusterConfigDir,
  ensureTemporalServer,
  type TemporalServerBinaries,
} from '../../server/temporal-server';

const exec = promisify(execFile);

// ---- PostgreSQL ---------------------------------------------------------------------------------

export interface Postgres {
  port: number;
  user: string;
  password: string;
  stop(): Promise<void>;
}

async function postgresBinDir(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const versions = (await readdir(root).catch(() => [] as string[])).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = path.join(root, v, 'bin');
    if (
      await access(path.join(bin, 'pg_ctl')).then(
        () => true,
        () => false,
      )
    )
      return bin;
  }
  throw new Error(
    'PostgreSQL server binaries not found (no /usr/lib/postgresql/<version>/bin/pg_ctl): ' +
      'install them with `apt-get install postgresql-15` (Debian), as .ci/run does',
  );
}

/** PostgreSQL refuses to run as root: then every step runs as the `postgres` system user. */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

async function pg(cmd: string, args: string[], timeout = 120_000) {
  const [c, a] = asPostgres(cmd, args);
  try {
    return await exec(c, a, { timeout, maxBuffer: 4 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

/** A new cluster in a temporary folder of its own (readable by the `postgres` user). */
export async function startPostgres(): Promise<Postgres> {
  const bin = await postgresBinDir();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-pg-'));
  const data = path.join(dir, 'pgdata');
  await mkdir(data, { recursive: true });
  if (process.getuid?.() === 0) {
    const { stdout } = await exec('id', ['-u', 'postgres']).catch(() => {
      throw new Error('no `postgres` system user to run PostgreSQL as (the Debian package creates it)');
    });
    const uid = Number(stdout.trim());
    await chown(dir, uid, -1);
    await chown(data, uid, -1);
  }
  const port = await freePort();
  const password = 'temporal-test-db';
  await pg(path.join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  await pg(path.join(bin, 'pg_ctl'), [
    '-D',
    data,
    '-l',
    path.join(dir, 'postgres.log'),
    '-w',
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
    'start',
  ]);
  await pg(path.join(bin, 'psql'), [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-U',
    'postgres',
    '-c',
    `CREATE ROLE temporal LOGIN CREATEDB PASSWORD '${password}'`,
  ]);
  return {
    port,
    user: 'temporal',
    password,
    async stop() {
      await pg(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---- TLS ----------------------------------------------------------------------------------------

export interface TestCa {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** a CA that signed nothing here: a client trusting it must be refused */
  otherCa: string;
}

async function openssl(args: string[], cwd: string) {
  await exec('openssl', args, { cwd }).catch((err: Error & { stderr?: string }) => {
    throw new Error(`openssl ${args[0]} failed (is openssl installed?): ${err.stderr || err.message}`);
  });
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
}

async function signed(dir: string, ca: string, name: string, ext: string): Promise<void> {
  await writeFile(path.join(dir, `${name}.ext`), ext);
  await openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    ],
    dir,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
}

/** A CA, a server certificate for localhost / 127.0.0.1 (also usable as a client: the server's own
 * system worker presents it) and a client certificate, made now. */
export async function makeTestCa(dir: string): Promise<TestCa> {
  await mkdir(dir, { recursive: true });
  await makeCa(dir, 'ca');
  await makeCa(dir, 'other-ca');
  await signed(
    dir,
    'ca',
    'server',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  await signed(dir, 'ca', 'client', 'extendedKeyUsage=clientAuth\n');
  const f = (n: string) => path.join(dir, n);
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    otherCa: f('other-ca.pem'),
  };
}

// ---- Temporal ------------------------------------------------------------------------------------

export interface TemporalCluster {
  /** how clients reach it: TLS with the test CA and the client certificate */
  target: TemporalTarget;
  /** the same as TEMPORAL_* variables, for child processes (workers, the CLI) */
  env: Record<string, string>;
  tls: TestCa;
  bins: TemporalServerBinaries;
  /** SIGTERM and start again on the same ports and database */
  restart(): Promise<void>;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  stop(): Promise<void>;
  logFile: string;
}

async function createSchema(bins: TemporalServerBinaries, db: Postgres): Promise<void> {
  const base = [
    '--plugin',
    'postgres12',
    '--ep',
    '127.0.0.1',
    '--port',
    String(db.port),
    '--user',
    db.user,
    '--password',
    db.password,
  ];
  for (const [name, folder] of [
    ['temporal', 'temporal'],
    ['temporal_visibility', 'visibility'],
  ]) {
    const withDb = [...base, '--db', name];
    const steps = [
      [...withDb, 'create-database'],
      [...withDb, 'setup-schema', '-v', '0.0'],
      [...withDb, 'update-schema', '-d', path.join(bins.postgresSchema, folder, 'versioned')],
    ];
    for (const args of steps) {
      await exec(bins.sql, args, { timeout: 120_000 }).catch((err: Error & { stderr?: string }) => {
        throw new Error(`temporal-sql-tool ${args.slice(-3).join(' ')} failed: ${err.stderr || err.message}`);
      });
    }
  }
}

/** PostgreSQL, schema, certificates and the server; resolves once the frontend answers over TLS. */
export async function startTemporalCluster(
  dir: string,
  log: (l: string) => void = () => {},
): Promise<TemporalCluster & { db: Postgres }> {
  const bins = await ensureTemporalServer(log);
  const db = await startPostgres();
  try {
    await createSchema(bins, db);
    const tls = await makeTestCa(path.join(dir, 'tls'));
    const ports: Record<string, number> = {};
    for (const name of [
      'FRONTEND',
      'FRONTEND_MEMBERSHIP',
      'FRONTEND_HTTP',
      'HISTORY',
      'HISTORY_MEMBERSHIP',
      'MATCHING',
      'MATCHING_MEMBERSHIP',
      'WORKER',
      'WORKER_MEMBERSHIP',
      'METRICS',
    ])
      ports[name] = name.endsWith('MEMBERSHIP') ? await freeLowPort() : await freePort();
    const serverEnv: Record<string, string> = {
      TEMPORAL_BIND_IP: '127.0.0.1',
      TEMPORAL_DB_HOST: '127.0.0.1',
      TEMPORAL_DB_PORT: String(db.port),
      TEMPORAL_DB_USER: db.user,
      TEMPORAL_DB_PASSWORD: db.password,
      TEMPORAL_TLS_SERVER_CERT: tls.serverCert,
      TEMPORAL_TLS_SERVER_KEY: tls.serverKey,
      TEMPORAL_TLS_CA: tls.ca,
      TEMPORAL_TLS_REQUIRE_CLIENT_AUTH: 'true',
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
      TEMPORAL_DYNAMIC_CONFIG: path.join(clusterConfigDir, 'dynamicconfig.yaml'),
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [`TEMPORAL_${k}_PORT`, String(v)])),
    };
    const address = `127.0.0.1:${ports.FRONTEND}`;
    const target: TemporalTarget = {
      address,
      namespace: 'default',
      tls: { ca: tls.ca, cert: tls.clientCert, key: { file: tls.clientKey }, serverName: 'localhost' },
    };
    const logFile = path.join(dir, 'temporal.log');
    let child: ChildProcess | undefined;

    const startServer = async () => {
      const out = await open(logFile, 'a');
      child = spawn(
        bins.server,
        ['--root', '/', '--config', clusterConfigDir, '--env', 'cluster', '--allow-no-auth', 'start'],
        {
          env: { PATH: process.env.PATH, HOME: process.env.HOME, ...serverEnv },
          stdio: ['ignore', out.fd, out.fd],
        },
      );
      await out.close();
      await waitReady(target, child, logFile);
    };
    const stopServer = async () => {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    };
    await startServer();
    return {
      target,
      env: {
        TEMPORAL_ADDRESS: address,
        TEMPORAL_TLS_CA: tls.ca,
        TEMPORAL_TLS_CERT: tls.clientCert,
        TEMPORAL_TLS_KEY: tls.clientKey,
        TEMPORAL_TLS_SERVER_NAME: 'localhost',
      },
      tls,
      bins,
      db,
      logFile,
      startServer,
      stopServer,
      async restart() {
        await stopServer();
        await startServer();
      },
      async stop() {
        await stopServer();
        await db.stop();
      },
    };
  } catch (err) {
    await db.stop();
    throw err;
  }
}

/** Membership ports are stored as a PostgreSQL smallint: below 32768, where the kernel never picks. */
async function freeLowPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

async function waitReady(target: TemporalTarget, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`the Temporal server exited with ${child.exitCode}; see ${logFile}`);
    try {
      const client = await connectClient(target);
      await client.connection.close();
      return;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`the Temporal server did not answer: ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
