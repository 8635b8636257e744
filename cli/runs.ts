// `xcpb runs [--job <id>] [--limit N] [--json]`: recent runs.
// `xcpb runs show <workflowId> [--json] [--follow]`: one run's report tree; --follow follows a
// running run to its end (again after a Ctrl-C).
// `xcpb cancel <workflowId> [--wait]`: stop a run; its VMs still clean up their snapshots.
import { cancelRun, getRunReport, listRuns } from '../client/backup-client';
import {
  type ConnectionAndConfigFlags,
  clientFromFlags,
  optionalConfig,
  temporalSectionOf,
  withConnectionOptions,
} from './connection-flags';
import { printJson, terminalStyle } from './output';
import { positiveInt, type Register, run, withExamples } from './program';
import { formatReportTree, formatRunsTable } from './report-format';
import { followAndPrint } from './run';
import { zonesOf } from './zones';

export const registerRuns: Register = (program) => {
  const runs = withExamples(
    withConnectionOptions(
      program
        .command('runs')
        .description('recent runs of backup jobs, newest first (Temporal visibility)')
        .option('--job <id>', 'only the runs of this job')
        .option('--limit <n>', 'at most this many', positiveInt, 20)
        .option('--json', 'as JSON'),
      { configFlag: true },
    ),
    'xcpb runs',
    'xcpb runs --job prod-nightly --limit 5',
    'xcpb runs show xcpb:prod-nightly:manual-2026-01-15T02:00:00.000Z',
  ).action(
    run(async (o: ConnectionAndConfigFlags & { job?: string; limit: number; json?: boolean }) => {
      const config = await optionalConfig(o.config);
      const client = await clientFromFlags(o, config?.temporal);
      try {
        const list = await listRuns(client, { jobId: o.job, limit: o.limit });
        if (o.json) printJson(list);
        else {
          const zoneOf = await zonesOf(list, { config, client });
          process.stdout.write(`${formatRunsTable(list, terminalStyle, { zoneOf })}\n`);
        }
        return 0;
      } finally {
        await client.connection.close();
      }
    }),
  );
  withExamples(
    withConnectionOptions(
      runs
        .command('show')
        .description("one run's report: job → VM → steps, with bytes, throughput and errors")
        .argument('<workflowId>', 'as `xcpb runs` lists it')
        .option('--json', 'as JSON')
        .addHelpText(
          'after',
          '\nA big run stores its full report on its first remote (xcpb-runs/<run>/report.json):\n' +
            'give --config so its remotes can be read.',
        )
        .option('-f, --follow', 'follow a running run until it ends (exit 1 when it failed)'),
      { configFlag: true },
    ),
    'xcpb runs show xcpb:prod-nightly:manual-2026-01-15T02:00:00.000Z',
    'xcpb runs show <workflowId> --follow',
    'xcpb runs show <workflowId> --json | jq .vms[].status',
  ).action(
    run(async (workflowId: string, o: ConnectionAndConfigFlags & { json?: boolean; follow?: boolean }) => {
      // The config's remotes hold the full report of a big run (beside its backups).
      const config = await optionalConfig(o.config);
      const client = await clientFromFlags(o, config?.temporal);
      try {
        if (o.follow) return await followAndPrint(client, workflowId, { json: o.json, config });
        const report = await getRunReport(client, workflowId, { liveBytes: true, config });
        if (o.json) printJson(report);
        else {
          const zoneOf = await zonesOf([report], { config, client });
          process.stdout.write(`${formatReportTree(report, terminalStyle, { timeZone: zoneOf(report) })}\n`);
        }
        return 0;
      } finally {
        await client.connection.close();
      }
    }),
  );
};

export const registerCancel: Register = (program) => {
  withExamples(
    withConnectionOptions(
      program
        .command('cancel')
        .description('cancel a run; each of its VMs still deletes its snapshot and releases its locks')
        .argument('<workflowId>', 'the run, as `xcpb runs` lists it')
        .option('--wait', 'wait until the run has ended'),
      { configFlag: true },
    ),
    'xcpb cancel xcpb:prod-nightly:manual-2026-01-15T02:00:00.000Z',
    'xcpb cancel <workflowId> --wait',
  ).action(
    run(async (workflowId: string, o: ConnectionAndConfigFlags & { wait?: boolean }) => {
      const client = await clientFromFlags(o, await temporalSectionOf(o.config));
      try {
        await cancelRun(client, workflowId);
        if (!o.wait) {
          process.stdout.write(
            `cancel requested for ${workflowId}; its VMs delete their snapshots before it ends ` +
              `(\`xcpb runs show ${workflowId} --follow\`)\n`,
          );
          return 0;
        }
        await client.workflow
          .getHandle(workflowId)
          .result()
          .catch(() => undefined); // waiting only: the state below says how it ended
        const { status } = await client.workflow.getHandle(workflowId).describe();
        process.stdout.write(`${workflowId} ${status.name.toLowerCase()}\n`);
        return 0;
      } finally {
        await client.connection.close();
      }
    }),
  );
};
