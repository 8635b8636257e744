// `npm run bench`: runs the benchmarks of bench/ one after the other, each in a process of its own
// (a benchmark's memory and event loop never weigh on the next), collects the figures they record
// with `recordResult` (bench/lib/results.ts), prints them as one table and keeps the whole run as
// JSON so that two runs can be compared (`--compare a.json b.json`).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Table from 'cli-table3';
import { Command, CommanderError } from 'commander';
import type { RecordedResult } from './results';

const repoRoot = path.resolve(import.meta.dirname, '../..');

/** Scripts of bench/ that are not benchmarks (they record no figure). */
const NOT_BENCHMARKS = new Set(['ui-screenshots']);

export interface BenchRun {
  name: string;
  /** `ok`: exited 0 and recorded at least one figure */
  status: 'ok' | 'failed';
  /** why it failed: exit code, signal, or no figure recorded */
  error?: string;
  seconds: number;
  results: RecordedResult[];
}

export interface RunFile {
  date: string;
  commit: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; platform: string };
  /** the XCPB_BENCH_* size knobs set for this run (none: every benchmark at its defaults) */
  env: Record<string, string>;
  benches: BenchRun[];
}

/** The benchmarks of a folder: its `*.ts` files, by name (without `.ts`), sorted. */
export function listBenchmarks(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -3))
    .filter((n) => !NOT_BENCHMARKS.has(n))
    .sort();
}

/** The JSON lines a benchmark appended to its results file; a torn last line (a crash) is skipped. */
export function parseResultLines(text: string): RecordedResult[] {
  const out: RecordedResult[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as RecordedResult);
    } catch {
      // a benchmark killed mid-write leaves half a line: what it recorded before still counts
    }
  }
  return out;
}

// colours only on a terminal: the table is also kept in logs and CI output
const style = () => (process.stdout.isTTY ? { head: ['bold'] } : { head: [], border: [] });

const num = (n: number | undefined, unit = '') =>
  n === undefined
    ? ''
    : `${Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(3)}${unit ? ` ${unit}` : ''}`;

/** One table of every figure of the run; a failed benchmark is one row saying why. */
export function renderTable(benches: BenchRun[]): string {
  const table = new Table({
    head: ['bench', 'figure', 'value', 'baseline', 'ratio', 'goal', 'met'],
    wordWrap: true,
    colWidths: [20, 38, 14, 34, 8, 12, 6],
    style: style(),
  });
  for (const b of benches) {
    for (const r of b.results) {
      table.push([
        b.name,
        r.figure,
        num(r.value, r.unit),
        r.baseline ? `${r.baseline}: ${num(r.baselineValue, r.unit)}` : '',
        r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`,
        r.goal ?? '',
        r.met === undefined ? '' : r.met ? 'yes' : 'NO',
      ]);
    }
    if (b.status === 'failed') table.push([b.name, `FAILED: ${b.error}`, '', '', '', '', '']);
  }
  return table.toString();
}

/** Figures of two runs side by side (matched by bench and figure). */
export function renderComparison(a: RunFile, b: RunFile): string {
  const table = new Table({
    head: ['bench', 'figure', `before (${a.date.slice(0, 16)})`, `after (${b.date.slice(0, 16)})`, 'change'],
    wordWrap: true,
    colWidths: [20, 38, 22, 22, 10],
    style: style(),
  });
  const key = (bench: string, r: RecordedResult) => `${bench}\u0000${r.figure}`;
  const before = new Map<string, RecordedResult>();
  for (const x of a.benches) for (const r of x.results) before.set(key(x.name, r), r);
  const seen = new Set<string>();
  for (const x of b.benches) {
    for (const r of x.results) {
      const k = key(x.name, r);
      seen.add(k);
      const old = before.get(k);
      // ratios against a baseline of the same run are what compares across machines and load
      const show = (v: RecordedResult) =>
        v.ratio !== undefined ? `${num(v.value, v.unit)} (${v.ratio.toFixed(2)}×)` : num(v.value, v.unit);
      const change =
        old === undefined
          ? 'new'
          : old.ratio !== undefined && r.ratio !== undefined
            ? `${((r.ratio / old.ratio - 1) * 100).toFixed(0)}% ×`
            : old.value
              ? `${((r.value / old.value - 1) * 100).toFixed(0)}%`
              : '';
      table.push([x.name, r.figure, old ? show(old) : '', show(r), change]);
    }
  }
  for (const x of a.benches)
    for (const r of x.results)
      if (!seen.has(key(x.name, r))) table.push([x.name, r.figure, num(r.value, r.unit), '', 'gone']);
  return table.toString();
}

function gitCommit(): string {
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' });
  if (head.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  return `${head.stdout.trim()}${dirty.stdout.trim() ? ' (with uncommitted changes)' : ''}`;
}

function machine(): RunFile['machine'] {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

/** Runs one benchmark in its own process; its output goes to ours as it comes. */
async function runOne(dir: string, name: string, scratch: string): Promise<BenchRun> {
  const resultsFile = path.join(scratch, `${name}.jsonl`);
  const started = performance.now();
  console.log(`\n=== ${name} ===`);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(dir, `${name}.ts`)], {
        cwd: repoRoot,
        env: { ...process.env, XCPB_BENCH_RESULTS: resultsFile },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      child.on('error', () => resolve({ code: -1, signal: null }));
      child.on('exit', (c, s) => resolve({ code: c, signal: s }));
    },
  );
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  const results = existsSync(resultsFile) ? parseResultLines(readFileSync(resultsFile, 'utf8')) : [];
  const error =
    signal !== null
      ? `killed by ${signal}`
      : code !== 0
        ? `exit code ${code}`
        : results.length === 0
          ? 'recorded no figure'
          : undefined;
  return { name, status: error ? 'failed' : 'ok', ...(error ? { error } : {}), seconds, results };
}

function timestamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('npm run bench --')
    .description(
      'Runs the benchmarks of bench/ (all, or those named), prints one table, writes the run as JSON',
    )
    .argument('[names...]', 'benchmarks to run (file names in bench/ without .ts); default all')
    .option('--dir <folder>', 'folder holding the benchmarks', path.join(repoRoot, 'bench'))
    .option('--out <file>', 'where to write the run as JSON (default bench-results/<time>.json)')
    .option('--list', 'list the benchmarks and exit')
    .option('--compare <files...>', 'print two runs (JSON files written by this command) side by side')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    throw e;
  }
  const opts = program.opts<{ dir: string; out?: string; list?: boolean; compare?: string[] }>();
  if (opts.compare) {
    if (opts.compare.length !== 2) {
      console.error('--compare takes two files: the run before and the run after');
      return 2;
    }
    const [a, b] = opts.compare.map((f) => JSON.parse(readFileSync(f, 'utf8')) as RunFile);
    console.log(renderComparison(a, b));
    return 0;
  }
  const dir = path.resolve(opts.dir);
  const all = listBenchmarks(dir);
  if (opts.list) {
    console.log(all.join('\n'));
    return 0;
  }
  const names: string[] = program.args.length ? program.args.map((n) => n.replace(/\.ts$/, '')) : all;
  const unknown = names.filter((n) => !all.includes(n));
  if (unknown.length) {
    console.error(`no benchmark named ${unknown.join(', ')} in ${dir} (there are: ${all.join(', ')})`);
    return 2;
  }
  const date = new Date();
  const out = path.resolve(opts.out ?? path.join(repoRoot, 'bench-results', `${timestamp(date)}.json`));
  const scratch = path.join(os.tmpdir(), `xcpb-bench-run-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  const benches: BenchRun[] = [];
  try {
    for (const name of names) benches.push(await runOne(dir, name, scratch));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => e[0].startsWith('XCPB_BENCH_') && e[0] !== 'XCPB_BENCH_RESULTS',
    ),
  );
  const run: RunFile = { date: date.toISOString(), commit: gitCommit(), machine: machine(), env, benches };
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(run, null, 2)}\n`);
  console.log(`\n${renderTable(benches)}`);
  const failed = benches.filter((b) => b.status === 'failed');
  console.log(
    `${benches.length} benchmark(s), ${failed.length} failed${failed.length ? ` (${failed.map((b) => b.name).join(', ')})` : ''}; run written to ${out.startsWith(process.cwd()) ? path.relative(process.cwd(), out) : out}`,
  );
  return failed.length ? 1 : 0;
}
