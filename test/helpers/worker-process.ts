// `xcpb worker --config <file>` as a real child process, for tests that kill it (SIGKILL) or read its
// output. Every process started here is tracked so `stopAllWorkerProcesses()` can end them in afterAll.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { type BackupStack, PASSWORD_ENV } from './backup-stack';
import { repoRoot } from './cli';
import { temporalAddress } from './temporal';

export interface WorkerProcessOptions {
  /** Temporal frontend (default: the global test server) */
  address?: string;
  /** namespace (default: the stack's) */
  namespace?: string;
  /** more environment (TEMPORAL_TLS_* of a cluster) */
  env?: Record<string, string>;
  /** more arguments of `xcpb worker` */
  args?: string[];
}

export class WorkerProcess {
  /** Everything the process wrote on stdout and stderr, in order. */
  output = '';
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  static async start(stack: BackupStack, o: WorkerProcessOptions = {}): Promise<WorkerProcess> {
    const configFile = await stack.writeConfigFile();
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'bin/xcpb.mjs'), 'worker', '--config', configFile, ...(o.args ?? [])],
      {
        cwd: repoRoot,
        env: {
          ...process.env,
          NO_COLOR: '1',
          TEMPORAL_ADDRESS: o.address ?? temporalAddress(),
          TEMPORAL_NAMESPACE: o.namespace ?? stack.namespace,
          [PASSWORD_ENV]: stack.pool().password,
          ...o.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const worker = new WorkerProcess(child);
    live.add(worker);
    void worker.exited.then(() => live.delete(worker));
    await worker.ready();
    return worker;
  }

  /** Resolves once the process says its workers poll; rejects if it exits first. */
  private async ready(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes('worker ready')) {
      if (!this.running) throw new Error(`worker process exited before it was ready:\n${this.output}`);
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(`worker process not ready after ${timeoutMs} ms:\n${this.output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** kill -9, and wait until the process is gone. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (graceful), then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const live = new Set<WorkerProcess>();

/** Stops every worker process this test file started and that still runs (afterAll). */
export async function stopAllWorkerProcesses(): Promise<void> {
  await Promise.all([...live].map((w) => w.kill()));
}
