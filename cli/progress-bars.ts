// Progress bars on a terminal (cli-progress): one per VM while a run goes, one for a restore; each
// with its percentage, rate and ETA once the total is known (a VHD export's total comes with its
// header; an XVA's is a bound read from XAPI as it starts: activities/xva-size.ts).
import cliProgress from 'cli-progress';
import type { RunReport, VmReport } from '../core/run-report';
import { formatBytes } from '../core/words';
import { formatDuration } from './report-format';

export interface Progress {
  name: string;
  bytes: number;
  total?: number;
  /** when the transfer started (epoch ms), for the rate */
  start: number;
  /** what it is doing, or its outcome */
  doing: string;
}

/** One line: `db-prod-01  [██████░░░░]  60% 120.0 MiB/200.0 MiB  48.2 MiB/s  ETA 2s  export`. */
export function formatBar(p: Progress, now: number, width = 24): string {
  const seconds = Math.max(0.001, (now - p.start) / 1000);
  const rate = p.bytes / seconds;
  const known = p.total !== undefined && p.total > 0;
  const ratio = known ? Math.min(1, p.bytes / p.total!) : 0;
  const filled = Math.round(ratio * width);
  const bar = known ? `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]` : `[${'·'.repeat(width)}]`;
  const pct = known ? `${String(Math.floor(ratio * 100)).padStart(3)}%` : '  -%';
  const size = known ? `${formatBytes(p.bytes)}/${formatBytes(p.total!)}` : formatBytes(p.bytes);
  const eta =
    known && rate > 0 && ratio < 1 ? `  ETA ${formatDuration(((p.total! - p.bytes) / rate) * 1000)}` : '';
  return `${bar} ${pct} ${size}  ${formatBytes(rate)}/s${eta}  ${p.doing}`;
}

export function vmProgress(vm: VmReport): Progress {
  const exports = vm.steps.filter((s) => s.name === 'export');
  const bytes = exports.reduce((n, s) => n + (s.bytes ?? 0), 0);
  const running = exports.filter((s) => s.status === 'running');
  // The total is known when every running export knows its own.
  const total = running.every((s) => s.total !== undefined)
    ? exports.reduce((n, s) => n + (s.status === 'running' ? s.total! : (s.bytes ?? 0)), 0)
    : undefined;
  const step = [...vm.steps].reverse().find((s) => s.status === 'running') ?? vm.steps.at(-1);
  const doing =
    vm.status === 'running'
      ? `${step ? `${step.name}${step.target ? ` ${step.target}` : ''}` : 'starting'}${vm.detail?.startsWith('retrying') ? ` (${vm.detail})` : ''}`
      : vm.status;
  return {
    name: vm.vmName,
    bytes,
    total: vm.status === 'success' ? bytes : total,
    start: Date.parse(exports[0]?.start ?? vm.start),
    doing,
  };
}

/** Bars redrawn in place on a terminal; `update` with each new report, `stop` at the end. */
export class ProgressBars {
  private readonly multibar: cliProgress.MultiBar;
  private readonly bars = new Map<string, cliProgress.SingleBar>();

  constructor(stream: NodeJS.WriteStream) {
    this.multibar = new cliProgress.MultiBar(
      {
        stream,
        hideCursor: true,
        clearOnComplete: false,
        format: (_options, _params, payload: { line: string }) => payload.line,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(items: Progress[], now = Date.now()): void {
    const width = Math.max(...items.map((i) => i.name.length), 4);
    for (const item of items) {
      const line = `${item.name.padEnd(width)}  ${formatBar(item, now)}`;
      const bar = this.bars.get(item.name);
      if (bar) bar.update(0, { line });
      else this.bars.set(item.name, this.multibar.create(1, 0, { line }));
    }
  }

  stop(): void {
    this.multibar.stop();
  }
}

export function runProgressItems(report: RunReport): Progress[] {
  return report.vms.map(vmProgress);
}
