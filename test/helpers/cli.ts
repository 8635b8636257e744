// Runs the real `xcpb` command as a child process, as a user would.
import { execFile } from 'node:child_process';
import path from 'node:path';

export const repoRoot = path.resolve(import.meta.dirname, '../..');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runXcpb(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(repoRoot, 'bin/xcpb.mjs'), ...args],
      // maxBuffer: a big run's report is megabytes of JSON (test/backup/scale).
      {
        env: { ...process.env, NO_COLOR: '1', ...env },
        cwd: repoRoot,
        timeout: 120_000,
        maxBuffer: 256 * 1024 ** 2,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
