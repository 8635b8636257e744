// `xcpb run <jobId> --config <file> [--schedule <id>] [--no-wait] [--json]`: a run of a job now,
// followed VM by VM until it ends, then its report. Exit 1 when a VM failed (or the run did).
import type { Client } from '@temporalio/client';
import { getRunState, RunInFlightError, type RunState, startBackupJob } from '../client/backup-client';
import type { ReportConfig } from '../client/stored-report';
import { loadConfigFile } from '../config/load';
import type { Config } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import type { RunProgress, RunReport } from '../core/run-report';
import { formatBytes } from '../core/words';
import { type ConnectionFlags, clientFromFlags, withConnectionOptions } from './connection-flags';
import { printJson, terminalStyle } from './output';
import { type Register, run, withExamples } from './program';
import { ProgressBars, runProgressItems } from './progress-bars';
import { formatProgress, formatReportTree, plainStyle } from './report-format';
import { zonesOf } from './zones';

const POLL_MS = 1_000;

interface RunFlags extends ConnectionFlags {
  config: string;
  schedule?: string;
  wait: boolean;
  json?: boolean;
}

export const registerRun: Register = (program) => {
  withExamples(
    withConnectionOptions(
      program
        .command('run')
        .description(
          'start a run of a job now (as its schedule would) and follow it VM by VM; exit 1 when a VM failed',
        )
        .argument('<jobId>', 'a job of the config')
        .requiredOption('-c, --config <file>', 'the config file')
        .option('--schedule <id>', "whose retention applies (default: the job's first schedule)")
        .option('--no-wait', 'print the workflow id and return')
        .option('--json', 'print only the final report, as JSON'),
    ),
    'xcpb run prod-nightly --config examples/config.yaml',
    'xcpb run prod-nightly -c my.yaml --schedule weekly --json > report.json',
    'xcpb run prod-nightly -c my.yaml --no-wait   # then: xcpb runs show <id> --follow',
  ).action(run(runJob));
};

async function runJob(jobId: string, o: RunFlags): Promise<number> {
  const loaded = await loadConfigFile(o.config);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  const client = await clientFromFlags(o, loaded.config.temporal);
  try {
    let workflowId: string;
    try {
      const handle = await startBackupJob(client, { config: loaded.config, jobId, scheduleId: o.schedule });
      workflowId = handle.workflowId;
    } catch (err) {
      if (!(err instanceof RunInFlightError)) throw err;
      process.stderr.write(`xcpb run: refused: ${err.message}\n`);
      return 1;
    }
    if (!o.wait) {
      process.stdout.write(`${workflowId}\n`);
      return 0;
    }
    process.stderr.write(`started ${workflowId}\n`);
    return await followAndPrint(client, workflowId, { json: o.json, config: loaded.config });
  } finally {
    await client.connection.close();
  }
}

/**
 * Follows a run until it ends (progress on stderr), then prints its report; exit 1 when it failed.
 * Ctrl-C stops following, not the run: it is durable, and `xcpb runs show <id> --follow` resumes.
 */
export async function followAndPrint(
  client: Client,
  workflowId: string,
  o: { json?: boolean; config?: Config },
): Promise<number> {
  process.once('SIGINT', () => {
    process.stderr.write(
      `\nstopped following; the run goes on. Follow it again with \`xcpb runs show ${workflowId} --follow\`, ` +
        `cancel it with \`xcpb cancel ${workflowId}\`\n`,
    );
    process.exit(130);
  });
  let report: RunReport;
  if (process.stderr.isTTY) {
    // A bar per VM with percentage, rate and ETA, redrawn in place.
    const bars = new ProgressBars(process.stderr);
    try {
      ({ report } = await followRun(client, workflowId, (r) => bars.update(runProgressItems(r)), o.config));
    } finally {
      bars.stop();
    }
  } else ({ report } = await followRun(client, workflowId, progressPrinter(process.stderr), o.config));
  if (o.json) printJson(report);
  else {
    const zoneOf = await zonesOf([report], { config: o.config, client });
    process.stdout.write(`${formatReportTree(report, terminalStyle, { timeZone: zoneOf(report) })}\n`);
  }
  return runFailed(report) ? 1 : 0;
}

/** A run failed when it did as a whole (cancelled, VM selection failed) or any of its VMs did. */
export function runFailed(report: RunReport): boolean {
  return report.status === 'failure' || report.vms.some((vm) => vm.status === 'failure');
}

/**
 * Polls a run's compact progress every second until the run ends, handing each to `onProgress`
 * (the VMs running now and the last few finished; `progress` has the counts), then returns its
 * complete report (read with `config`'s remotes when the run is big).
 */
export async function followRun(
  client: Client,
  workflowId: string,
  onProgress: (report: RunReport, progress?: RunProgress) => void,
  config?: ReportConfig,
): Promise<RunState> {
  for (;;) {
    const state = await getRunState(client, workflowId, { liveBytes: true, config });
    if (state.closed) return state;
    onProgress(state.report, state.progress);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * Progress lines on a stream: on a terminal redrawn in place every poll, elsewhere (logs, pipes)
 * a line only when a VM's line changed.
 */
export function progressPrinter(
  stream: NodeJS.WriteStream,
): (report: RunReport, progress?: RunProgress) => void {
  if (stream.isTTY) {
    let drawn = 0;
    return (report, progress) => {
      // Plain and cut to the width: a wrapped line would throw off the cursor-up count.
      const width = Math.max(20, (stream.columns || 80) - 1);
      const lines = [
        ...progressCounts(report, progress),
        ...formatProgress(report, plainStyle, Date.now()),
      ].map((l) => l.slice(0, width));
      // Move up over the previous drawing and clear it before drawing again.
      if (drawn > 0) stream.write(`\x1b[${drawn}A\x1b[0J`);
      stream.write(`${lines.join('\n')}\n`);
      drawn = lines.length;
    };
  }
  const shown = new Set<string>();
  return (report, progress) => {
    for (const line of [...progressCounts(report, progress), ...formatProgress(report)]) {
      if (shown.has(line)) continue;
      shown.add(line);
      stream.write(`${line}\n`);
    }
  };
}

/** The run's counts above its VMs' lines: `120/10000 VMs done, 2 failed, 16 running, 1.2 GiB`. */
export function progressCounts(report: RunReport, p: RunProgress | undefined): string[] {
  if (!p || p.selected === 0) return [];
  const c = p.counts;
  const running = report.vms.filter((vm) => vm.status === 'running').length;
  return [
    [
      `${c.vms}/${p.selected}${p.selecting ? '+' : ''} VMs done`,
      c.failure ? `${c.failure} failed` : undefined,
      c.skipped ? `${c.skipped} skipped` : undefined,
      running ? `${running} running` : undefined,
      p.bytes ? formatBytes(p.bytes) : undefined,
    ]
      .filter(Boolean)
      .join(', '),
  ];
}
