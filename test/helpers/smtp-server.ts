// A real SMTP server for the report tests: aiosmtpd (PyPI), installed into a venv in the xcpb cache
// by .ci/run, storing what it receives in a Maildir that the test reads (its "API").
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../server/dev-server';

/** Where .ci/run installs aiosmtpd (pinned, like the Temporal CLI). */
export const AIOSMTPD_PYTHON = path.join(
  process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'),
  'xcpb',
  'aiosmtpd-1.4.6',
  'bin',
  'python',
);

export interface SmtpServer {
  host: string;
  port: number;
  /** the raw messages received so far (RFC 5322 text), oldest first */
  messages(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startSmtpServer(maildir: string): Promise<SmtpServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    AIOSMTPD_PYTHON,
    ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${port}`, '-c', 'aiosmtpd.handlers.Mailbox', maildir],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`aiosmtpd exited (${child.exitCode}): ${stderr} — run .ci/run to install it`);
    if (await answers(port)) break;
    if (Date.now() > deadline) throw new Error(`aiosmtpd did not listen on ${port}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host: '127.0.0.1',
    port,
    async messages() {
      const dir = path.join(maildir, 'new');
      const names = (await readdir(dir).catch(() => [] as string[])).sort();
      return Promise.all(names.map((n) => readFile(path.join(dir, n), 'utf8')));
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('data', (d) => {
      socket.destroy();
      resolve(d.toString().startsWith('220'));
    });
    socket.once('error', () => resolve(false));
  });
}
