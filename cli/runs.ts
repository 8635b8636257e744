// `xcpb runs [--job <id>] [--limit N] [--json]`: recent runs.
// `xcpb runs show <workflowId> [--json]`: one run's report tree.
// `xcpb cancel <workflowId> [--wait]`: stop a run; its VMs still clean up their snapshots.
import { parseArgs } from 'node:util';
import { cancelRun, getRunReport, getRunState, listRuns } from '../client/backup-client';
import type { ConnectionFlags } from '../client/connect';
import { clientFromFlags, connectionOptions, temporalSectionOf } from './connection-flags';
import { printJson, UsageError } from './output';
import { formatReportTree, formatRunsTable } from './report-format';
import { terminalStyle } from './run';

export async function runsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      job: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
      ...connectionOptions,
      config: { type: 'string' },
    },
  });
  if (positionals[0] === 'show') return showRun(positionals.slice(1), values);
  if (positionals.length > 0)
    throw new UsageError(
      'usage: xcpb runs [--job <id>] [--limit N] [--json] | runs show <workflowId> [--json]',
    );
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new UsageError(`--limit must be a positive integer, got ${values.limit}`);
  const client = await clientFromFlags(values, await temporalSectionOf(values.config));
  try {
    const runs = await listRuns(client, { jobId: values.job, limit });
    if (values.json) printJson(runs);
    else process.stdout.write(`${formatRunsTable(runs, terminalStyle)}\n`);
    return 0;
  } finally {
    await client.connection.close();
  }
}

async function showRun(
  positionals: string[],
  values: { json?: boolean; config?: string } & ConnectionFlags,
): Promise<number> {
  if (positionals.length !== 1) throw new UsageError('usage: xcpb runs show <workflowId> [--json]');
  const client = await clientFromFlags(values, await temporalSectionOf(values.config));
  try {
    const report = await getRunReport(client, positionals[0], { liveBytes: true });
    if (values.json) printJson(report);
    else process.stdout.write(`${formatReportTree(report, terminalStyle)}\n`);
    return 0;
  } finally {
    await client.connection.close();
  }
}

export async function cancelCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { wait: { type: 'boolean' }, config: { type: 'string' }, ...connectionOptions },
  });
  if (positionals.length !== 1) throw new UsageError('usage: xcpb cancel <workflowId> [--wait]');
  const [workflowId] = positionals;
  const client = await clientFromFlags(values, await temporalSectionOf(values.config));
  try {
    await cancelRun(client, workflowId);
    if (!values.wait) {
      process.stdout.write(
        `cancel requested for ${workflowId}; its VMs delete their snapshots before it ends ` +
          `(\`xcpb runs show ${workflowId}\`)\n`,
      );
      return 0;
    }
    await client.workflow
      .getHandle(workflowId)
      .result()
      .catch(() => undefined);
    const state = await getRunState(client, workflowId);
    process.stdout.write(`${workflowId} ${state.temporalStatus.toLowerCase()}\n`);
    return 0;
  } finally {
    await client.connection.close();
  }
}
