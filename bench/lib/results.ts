// One format for every benchmark's figures, so `npm run bench` can print them as one table and
// keep them as JSON to compare runs.
//
// A benchmark calls `recordResult` once per figure. The row is printed for a person reading the
// benchmark's own output, and, when the runner set XCPB_BENCH_RESULTS, appended as one JSON line to
// that file (the runner collects the lines of every benchmark it ran).

import { appendFileSync } from 'node:fs';

export interface BenchResult {
  /** the benchmark's name: its file name without `.ts` (e.g. `backup-datapath`) */
  bench: string;
  /** what was measured, short (e.g. `delta backup, full chain`) */
  figure: string;
  /** the measured value, in `unit` */
  value: number;
  /** `s`, `ms`, `MiB`, `MiB/s`, `events`, `KiB`… */
  unit: string;
  /** what the figure is compared with, measured in the same run (e.g. `curl + fsync of the export`) */
  baseline?: string;
  /** the baseline's value, in the same unit as `value` */
  baselineValue?: number;
  /** the goal, said the way the issue says it (e.g. `≤ 1.05×`, `≤ 250 MiB`) */
  goal?: string;
  /** true when the goal is met; left out when the figure has no goal */
  met?: boolean;
}

export interface RecordedResult extends BenchResult {
  /** value / baselineValue, when there is a baseline */
  ratio?: number;
}

/** Records one figure: prints it, and appends it to the runner's results file when there is one. */
export function recordResult(r: BenchResult): RecordedResult {
  const ratio = r.baselineValue ? r.value / r.baselineValue : undefined;
  const row: RecordedResult = { ...r, ...(ratio === undefined ? {} : { ratio: round(ratio, 3) }) };
  const against =
    r.baseline && r.baselineValue !== undefined
      ? ` vs ${r.baseline} ${fmt(r.baselineValue)} ${r.unit} = ${ratio?.toFixed(2)}×`
      : '';
  const goal = r.goal ? ` (goal ${r.goal}${r.met === undefined ? '' : r.met ? ', met' : ', NOT met'})` : '';
  console.log(`[result] ${r.figure}: ${fmt(r.value)} ${r.unit}${against}${goal}`);
  const file = process.env.XCPB_BENCH_RESULTS;
  if (file) appendFileSync(file, `${JSON.stringify(row)}\n`);
  return row;
}

/**
 * Milliseconds between two report times. Report times may be epoch milliseconds or ISO 8601
 * strings; benchmarks use this instead of subtracting, so they read either.
 */
export function elapsedMs(start: number | string, end: number | string | undefined): number {
  const t = (x: number | string) => (typeof x === 'number' ? x : Date.parse(x));
  return end === undefined ? 0 : t(end) - t(start);
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function fmt(n: number): string {
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(3);
}
