// `npm run bench` (bin/run-bench.mjs) on a folder of tiny fake benchmarks: every benchmark runs in its
// own process even when one crashes, the figures they record come out as one table and as the run's
// JSON, and a crash (or a benchmark that records nothing) makes the exit code non-zero.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunFile } from '../../bench/lib/run-bench';
import { repoRoot } from '../helpers/cli';

const results = path.join(repoRoot, 'bench/lib/results.ts');
let dir: string;

function runBench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(repoRoot, 'bin/run-bench.mjs'), ...args],
      { env: { ...process.env, XCPB_BENCH_DISK: '7MiB' } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'xcpb-run-bench-'));
  const bench = (body: string) => `import { recordResult } from ${JSON.stringify(results)};\n${body}\n`;
  await writeFile(
    path.join(dir, 'fast.ts'),
    bench(`recordResult({ bench: 'fast', figure: 'copy', value: 2, unit: 's', baseline: 'cat', baselineValue: 1.6, goal: '≤ 1.5×', met: 2 / 1.6 <= 1.5 });
recordResult({ bench: 'fast', figure: 'peak RSS', value: 120, unit: 'MiB' });`),
  );
  await writeFile(
    path.join(dir, 'crash.ts'),
    bench(`recordResult({ bench: 'crash', figure: 'before the crash', value: 1, unit: 's' });
throw new Error('disk on fire');`),
  );
  await writeFile(path.join(dir, 'silent.ts'), bench('console.log("measured nothing");'));
  await writeFile(path.join(dir, 'ui-screenshots.ts'), 'throw new Error("not a benchmark: never run");\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('npm run bench', () => {
  it('runs every benchmark, prints one table, writes the run as JSON, and fails when one crashes', async () => {
    const out = path.join(dir, 'all.json');
    const r = await runBench('--dir', dir, '--out', out);
    expect(r.code).toBe(1);
    // each benchmark's own output still shows
    expect(r.stdout).toContain('measured nothing');
    expect(r.stderr).toContain('disk on fire');
    const table = r.stdout.slice(r.stdout.lastIndexOf('┌'));
    for (const cell of ['copy', '2.000 s', 'cat: 1.600 s', '1.25×', '≤ 1.5×', 'yes', 'peak RSS', '120 MiB'])
      expect(table).toContain(cell);
    expect(table).toContain('before the crash');
    expect(table).toMatch(/FAILED: exit code 1/);
    expect(table).toMatch(/FAILED: recorded no figure/);
    expect(r.stdout).toMatch(/3 benchmark\(s\), 2 failed \(crash, silent\)/);

    const run = JSON.parse(await readFile(out, 'utf8')) as RunFile;
    expect(Number.isNaN(Date.parse(run.date))).toBe(false);
    // the checkout's commit; `unknown` outside a git checkout (CI runs the suite from a plain copy)
    const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' });
    expect(run.commit.startsWith(head.status === 0 ? head.stdout.trim() : 'unknown'), run.commit).toBe(true);
    expect(run.machine.cpus).toBeGreaterThan(0);
    expect(run.machine.memoryGiB).toBeGreaterThan(0);
    expect(run.machine.node).toBe(process.version);
    // the size knobs of the run are kept with it
    expect(run.env).toMatchObject({ XCPB_BENCH_DISK: '7MiB' });
    expect(run.benches.map((b) => [b.name, b.status, b.error])).toEqual([
      ['crash', 'failed', 'exit code 1'],
      ['fast', 'ok', undefined],
      ['silent', 'failed', 'recorded no figure'],
    ]);
    expect(run.benches[1].results).toEqual([
      expect.objectContaining({ figure: 'copy', value: 2, baselineValue: 1.6, ratio: 1.25, met: true }),
      expect.objectContaining({ figure: 'peak RSS', value: 120, unit: 'MiB' }),
    ]);
  });

  it('runs only the benchmarks named; an unknown name changes nothing and says which exist', async () => {
    const out = path.join(dir, 'one.json');
    const r = await runBench('--dir', dir, '--out', out, 'fast');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/1 benchmark\(s\), 0 failed/);
    const run = JSON.parse(await readFile(out, 'utf8')) as RunFile;
    expect(run.benches.map((b) => b.name)).toEqual(['fast']);

    const bad = await runBench('--dir', dir, '--out', path.join(dir, 'bad.json'), 'fats');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no benchmark named fats');
    expect(bad.stderr).toContain('crash, fast, silent');
    await expect(readFile(path.join(dir, 'bad.json'))).rejects.toThrow(/ENOENT/);

    // two runs side by side
    const cmp = await runBench('--compare', path.join(dir, 'all.json'), out);
    expect(cmp.code).toBe(0);
    expect(cmp.stdout).toContain('copy');
    expect(cmp.stdout).toContain('0% ×');
    expect(cmp.stdout).toContain('before the crash');
    expect(cmp.stdout).toContain('gone');
  });
});
