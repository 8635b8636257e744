// Pure formatting of run reports and run lists for the terminal: text in, text out. Colour comes in
// as a Style, so callers decide (the CLI: only on a TTY without NO_COLOR).
import type { RunSummary } from '../client/backup-client';
import {
  durationMs,
  type RunReport,
  type Status,
  type StepReport,
  throughput,
  type VmReport,
  vmBytes,
} from '../core/run-report';

export { vmBytes };

import { formatBytes, plural } from '../core/words';
import { formatTable } from './table';
import { formatInZone, localZone } from './zones';

export { formatBytes };

export interface Style {
  green(text: string): string;
  red(text: string): string;
  orange(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

const same = (text: string) => text;
export const plainStyle: Style = { green: same, red: same, orange: same, dim: same, bold: same };

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m` : `${m}m ${String(s).padStart(2, '0')}s`;
}

export function paintStatus(status: string, style: Style): string {
  switch (status) {
    case 'success':
      return style.green(status);
    case 'failure':
    case 'cancelled':
      return style.red(status);
    case 'skipped':
      return style.orange(status);
    default:
      return status;
  }
}

const STATUS_MARK: Record<Status, string> = { success: '✓', failure: '✗', skipped: '-', running: '…' };

function elapsed(item: { start: string; end?: string }, now: number): string {
  return formatDuration(durationMs(item.start, item.end, now));
}

/** Whether the run's disk exports were full, delta, or both (undefined when nothing was exported). */
export function exportKind(report: RunReport): 'full' | 'delta' | 'full and delta' | undefined {
  const details = report.vms
    .flatMap((vm) => vm.steps)
    .filter((s) => s.name === 'export' && s.status === 'success')
    .map((s) => s.detail ?? '');
  if (details.length === 0) return undefined;
  const delta = details.filter((d) => d.startsWith('delta')).length;
  if (delta === details.length) return 'delta';
  if (delta === 0) return 'full';
  return 'full and delta';
}

/** Bytes a VM's exports read from the pool (each sent once to every target remote). */
export interface TimeOptions {
  /** what "now" is for a run still going (epoch ms) */
  now?: number;
  /** the zone times are printed in (cli/zones.ts: the run's schedule's); default this machine's */
  timeZone?: string;
}

/**
 * The report tree: job → VM → steps, with status, duration, bytes, throughput and errors; the
 * run's start in `timeZone`.
 */
export function formatReportTree(
  report: RunReport,
  style: Style = plainStyle,
  { now = Date.now(), timeZone }: TimeOptions = {},
): string {
  const lines: string[] = [];
  const schedule = report.scheduleId ? `, schedule ${report.scheduleId}` : '';
  lines.push(
    `${style.bold(report.workflowId)}  job ${report.jobId} (${report.mode}${schedule})  ` +
      `${paintStatus(report.status, style)}  ${style.dim(`started ${formatInZone(report.start, timeZone)}`)}  ` +
      elapsed(report, now),
  );
  if (report.reason) lines.push(`  ${style.dim(report.reason)}`);
  for (const vm of report.vms) lines.push(...formatVm(vm, style, now));
  const counts = countByStatus(report.vms);
  lines.push(
    style.dim(
      `${plural(report.vms.length, 'VM')}: ${Object.entries(counts)
        .map(([status, n]) => `${n} ${status}`)
        .join(', ')}`,
    ),
  );
  return lines.join('\n');
}

function countByStatus(vms: readonly VmReport[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const vm of vms) counts[vm.status] = (counts[vm.status] ?? 0) + 1;
  return counts;
}

function formatVm(vm: VmReport, style: Style, now: number): string[] {
  const bytes = vmBytes(vm);
  const lines = [
    `  ${STATUS_MARK[vm.status] ?? '?'} ${style.bold(vm.vmName)} ${style.dim(`${vm.vmUuid} on ${vm.poolId}`)}  ` +
      `${paintStatus(vm.status, style)}  ${elapsed(vm, now)}${bytes ? `  ${formatBytes(bytes)}` : ''}`,
  ];
  if (vm.detail) lines.push(`      ${style.dim(vm.detail)}`);
  if (vm.error) lines.push(`      ${style.red(`error: ${errorText(vm.error)}`)}`);
  const width = Math.max(0, ...vm.steps.map((s) => stepLabel(s).length));
  for (const step of vm.steps) lines.push(...formatStep(step, width, style, now));
  return lines;
}

function stepLabel(step: StepReport): string {
  return step.target ? `${step.name} ${step.target}` : step.name;
}

function formatStep(step: StepReport, width: number, style: Style, now: number): string[] {
  // Padded before painting: colour codes would count as width.
  const status = paintStatus(step.status, style) + ' '.repeat(Math.max(0, 7 - step.status.length));
  const parts = [stepLabel(step).padEnd(width), status, elapsed(step, now)];
  if (step.bytes !== undefined) parts.push(formatBytes(step.bytes));
  const rate = throughput(step);
  if (rate !== undefined) parts.push(`${formatBytes(rate)}/s`);
  if (step.detail) parts.push(style.dim(step.detail));
  const lines = [`      ${parts.join('  ')}`];
  if (step.error) lines.push(`        ${style.red(`error: ${errorText(step.error)}`)}`);
  return lines;
}

function errorText(error: { code?: string; message: string }): string {
  return error.code ? `${error.code}: ${error.message}` : error.message;
}

/** One line per VM while a run goes: its current (or last) step and the bytes so far; with the
 * time spent when `now` is given (a terminal that redraws), without it for logs that only get
 * a line when something changed. */
export function formatProgress(report: RunReport, style: Style = plainStyle, now?: number): string[] {
  if (report.vms.length === 0)
    return [`${report.jobId}: ${report.status === 'running' ? 'selecting VMs…' : report.status}`];
  const width = Math.max(...report.vms.map((vm) => vm.vmName.length));
  return report.vms.map((vm) => {
    const step = [...vm.steps].reverse().find((s) => s.status === 'running') ?? vm.steps.at(-1);
    const bytes = vmBytes(vm);
    const doing =
      vm.status === 'running' ? (step ? stepLabel(step) : 'starting') : paintStatus(vm.status, style);
    const time = now === undefined ? '' : `  ${style.dim(elapsed(vm, now))}`;
    const retry =
      vm.status === 'running' && vm.detail?.startsWith('retrying') ? `  ${style.orange(vm.detail)}` : '';
    return `${vm.vmName.padEnd(width)}  ${doing}${bytes ? `  ${formatBytes(bytes)}` : ''}${time}${retry}`;
  });
}

/** The `xcpb runs` table: workflow id, job, status, start (in its schedule's zone), duration, outcome. */
export function formatRunsTable(
  runs: readonly RunSummary[],
  style: Style = plainStyle,
  {
    now = Date.now(),
    zoneOf = () => localZone(),
  }: { now?: number; zoneOf?: (run: RunSummary) => string } = {},
): string {
  if (runs.length === 0) return 'no runs';
  const rows = runs.map((r) => [
    r.workflowId,
    r.jobId ?? '?',
    r.temporalStatus.toLowerCase(),
    formatInZone(r.start, zoneOf(r)),
    formatDuration((r.end?.getTime() ?? now) - r.start.getTime()),
    paintStatus(r.outcome ?? (r.temporalStatus === 'RUNNING' ? '' : '-'), style),
  ]);
  return formatTable(['WORKFLOW ID', 'JOB', 'STATUS', 'START', 'DURATION', 'OUTCOME'], rows, style);
}
