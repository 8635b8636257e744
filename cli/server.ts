// `xcpb server install | start | stop | status`: the Temporal dev server for local use.
// `xcpb server setup`: prepares any Temporal cluster or namespace (server/cluster-setup.ts).
import type { Connection } from '@temporalio/client';
import { connectClient } from '../client/connect';
import { setupCluster } from '../server/cluster-setup';
import {
  findRunningDevServer,
  startDetachedDevServer,
  stateDir,
  stopDetachedDevServer,
} from '../server/dev-server';
import { ensureTemporalCli } from '../server/temporal-cli';
import { ensureTemporalServer } from '../server/temporal-server';
import {
  type ConnectionAndConfigFlags,
  targetFromFlags,
  temporalSectionOf,
  withConnectionOptions,
} from './connection-flags';
import { positiveInt, type Register, run, withExamples } from './program';

const log = (line: string) => process.stderr.write(`${line}\n`);

export const registerServer: Register = (program) => {
  const server = withExamples(
    program
      .command('server')
      .description(
        'the Temporal dev server for local use (state in ~/.local/state/xcpb); setup prepares any cluster',
      ),
    'xcpb server install',
    'xcpb server start --port 7233',
    'xcpb server status',
    'xcpb server setup --address temporal.example.com:7233 --namespace backups',
  );
  withExamples(
    server
      .command('install')
      .description('build or find the pinned Temporal CLI; prints its path')
      .option(
        '--cluster',
        'also the Temporal server and its SQL tool (for a PostgreSQL cluster, test/cluster)',
      ),
    'xcpb server install',
    'xcpb server install --cluster',
  ).action(
    run(async (o: { cluster?: boolean }) => {
      process.stdout.write(`${await ensureTemporalCli(log)}\n`);
      if (o.cluster) {
        const bins = await ensureTemporalServer(log);
        process.stdout.write(`${bins.server}\n${bins.sql}\n${bins.postgresSchema}\n`);
      }
      return 0;
    }),
  );
  withExamples(
    server
      .command('start')
      .description(
        'start the dev server in the background (kept across runs); later commands on this machine use its address',
      )
      .option('--port <n>', 'frontend port (the Web UI is on port + 1000)', positiveInt, 7233),
    'xcpb server start',
    'xcpb server start --port 7300',
  ).action(
    run(async (o: { port: number }) => {
      const dir = stateDir();
      const info = await startDetachedDevServer(await ensureTemporalCli(log), dir, o.port);
      process.stdout.write(
        `${info.alreadyRunning ? 'already running' : 'started'} (pid ${info.pid}, state in ${dir})\n` +
          `Temporal: ${info.address}\nWeb UI:   ${info.uiUrl}\n`,
      );
      return 0;
    }),
  );
  withExamples(
    server.command('stop').description('stop the dev server started by `server start`'),
    'xcpb server stop',
  ).action(
    run(async () => {
      const stopped = await stopDetachedDevServer(stateDir());
      process.stdout.write(stopped ? `stopped (pid ${stopped.pid})\n` : 'not running\n');
      return 0;
    }),
  );
  withExamples(
    server.command('status').description('is the dev server running (exit 1 when not)'),
    'xcpb server status',
  ).action(
    run(async () => {
      const running = await findRunningDevServer(stateDir());
      process.stdout.write(
        running ? `running: ${running.address}, Web UI ${running.uiUrl}\n` : 'not running\n',
      );
      return running ? 0 : 1;
    }),
  );
  withExamples(
    withConnectionOptions(
      server
        .command('setup')
        .description(
          'prepare a Temporal cluster or namespace: create the namespace when missing (30-day retention), register and verify the search attributes; idempotent',
        ),
      { configFlag: true },
    ),
    'xcpb server setup',
    'xcpb server setup --address temporal:7233 --namespace backups',
    'xcpb server setup --config /etc/xcpb/prod.yaml   # the Temporal its "temporal:" section names',
  ).action(
    run(async (o: ConnectionAndConfigFlags) => {
      const target = await targetFromFlags(o, await temporalSectionOf(o.config));
      const client = await connectClient(target);
      try {
        process.stdout.write(`setting up ${target.namespace} on ${target.address}\n`);
        await setupCluster({
          connection: client.connection as Connection,
          namespace: target.namespace,
          log: (line) => process.stdout.write(`  ${line}\n`),
        });
        process.stdout.write('ready for xcp-backup\n');
        return 0;
      } finally {
        await client.connection.close();
      }
    }),
  );
};
