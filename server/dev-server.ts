// Runs the Temporal dev server: in the foreground for tests (a child of this process) or detached
// for users (`xcpb server start`), with the project's search attributes registered.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SEARCH_ATTRIBUTE_FLAGS } from '../core/search-attributes';

const run = promisify(execFile);

export interface DevServerOptions {
  cli: string;
  ip?: string;
  port?: number; // 0 or undefined: a free port
  uiPort?: number; // undefined: headless
  dbFile?: string; // undefined: in memory
  logFile?: string;
  namespaces?: string[]; // created at start, besides "default"
}

export interface DevServerInfo {
  address: string;
  uiUrl?: string;
  pid: number;
}

export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XCPB_STATE_DIR || path.join(os.homedir(), '.local', 'state', 'xcpb');
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function startArgs(o: Required<Pick<DevServerOptions, 'ip' | 'port'>> & DevServerOptions): string[] {
  const args = ['server', 'start-dev', '--ip', o.ip, '--port', String(o.port), '--log-level', 'warn'];
  args.push(...(o.uiPort ? ['--ui-port', String(o.uiPort)] : ['--headless']));
  if (o.dbFile) args.push('--db-filename', o.dbFile);
  for (const ns of o.namespaces ?? []) args.push('--namespace', ns);
  for (const sa of SEARCH_ATTRIBUTE_FLAGS) args.push('--search-attribute', sa);
  // Eager activity dispatch: an activity on the workflow's own queue (the main queue's remote work)
  // comes back with the workflow task's answer instead of through the queue (~50 ms less each).
  // Off by default in the server; `xcpb server setup` cannot set it on other clusters (README).
  args.push('--dynamic-config-value', 'system.enableActivityEagerExecution=true');
  return args;
}

/** Resolves when the frontend answers a health check, or rejects after `timeoutMs`. */
export async function waitHealthy(cli: string, address: string, timeoutMs = 60_000, child?: ChildProcess) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null)
      throw new Error(`the Temporal dev server exited with ${child.exitCode}`);
    try {
      await run(cli, ['operator', 'cluster', 'health', '--address', address], { timeout: 5_000 });
      return;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`the Temporal dev server at ${address} did not become healthy: ${err}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function raiseRetention(cli: string, address: string): Promise<void> {
  // Dev-server namespaces keep closed runs 24 h; backup history is worth a month.
  await run(
    cli,
    [
      'operator',
      'namespace',
      'update',
      '--address',
      address,
      '--namespace',
      'default',
      '--retention',
      '720h',
    ],
    {
      timeout: 20_000,
    },
  );
}

/** A server owned by this process (tests): stopped by `stop()` or when this process exits. */
export async function startOwnedDevServer(
  o: DevServerOptions,
): Promise<DevServerInfo & { stop(): Promise<void> }> {
  const ip = o.ip ?? '127.0.0.1';
  const port = o.port || (await freePort());
  const out = o.logFile ? await open(o.logFile, 'a') : undefined;
  const child = spawn(o.cli, startArgs({ ...o, ip, port }), {
    stdio: ['ignore', out ? out.fd : 'ignore', out ? out.fd : 'ignore'],
  });
  const address = `${ip}:${port}`;
  await waitHealthy(o.cli, address, 60_000, child);
  await raiseRetention(o.cli, address);
  return {
    address,
    pid: child.pid!,
    uiUrl: o.uiPort ? `http://${ip}:${o.uiPort}` : undefined,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await out?.close();
    },
  };
}

interface PidFile extends DevServerInfo {
  cli: string;
}

function pidFilePath(dir: string): string {
  return path.join(dir, 'temporal-server.json');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The detached server recorded in the state directory, if it still runs. */
export async function findRunningDevServer(dir: string): Promise<PidFile | undefined> {
  try {
    const info = JSON.parse(await readFile(pidFilePath(dir), 'utf8')) as PidFile;
    return alive(info.pid) ? info : undefined;
  } catch {
    return undefined;
  }
}

/** Starts a detached server with its SQLite file in the state directory, or finds the running one. */
export async function startDetachedDevServer(
  cli: string,
  dir: string,
  port = 7233,
  ip = '127.0.0.1',
): Promise<DevServerInfo & { alreadyRunning: boolean }> {
  const running = await findRunningDevServer(dir);
  if (running) return { ...running, alreadyRunning: true };
  await mkdir(dir, { recursive: true });
  const uiPort = port + 1000;
  const log = await open(path.join(dir, 'temporal-server.log'), 'a');
  const child = spawn(cli, startArgs({ cli, ip, port, uiPort, dbFile: path.join(dir, 'temporal.db') }), {
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
  });
  child.unref();
  await log.close();
  const address = `${ip}:${port}`;
  await waitHealthy(cli, address, 60_000, child);
  await raiseRetention(cli, address);
  const info: PidFile = { address, uiUrl: `http://${ip}:${uiPort}`, pid: child.pid!, cli };
  await writeFile(pidFilePath(dir), JSON.stringify(info, null, 2));
  return { ...info, alreadyRunning: false };
}

export async function stopDetachedDevServer(dir: string): Promise<DevServerInfo | undefined> {
  const running = await findRunningDevServer(dir);
  await rm(pidFilePath(dir), { force: true });
  if (!running) return undefined;
  process.kill(running.pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(running.pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive(running.pid)) process.kill(running.pid, 'SIGKILL');
  return running;
}
