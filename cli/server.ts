// `xcpb server install | start | stop | status`: the Temporal dev server for local use.
// `xcpb server setup`: prepares any Temporal cluster or namespace (server/cluster-setup.ts).
import { parseArgs } from 'node:util';
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
import { connectionOptions, targetFromFlags, temporalSectionOf } from './connection-flags';
import { UsageError } from './output';

const log = (line: string) => process.stderr.write(`${line}\n`);

export async function serverCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      port: { type: 'string' },
      config: { type: 'string' },
      cluster: { type: 'boolean' },
      ...connectionOptions,
    },
  });
  const dir = stateDir();
  switch (sub) {
    case 'install': {
      const cli = await ensureTemporalCli(log);
      process.stdout.write(`${cli}\n`);
      if (values.cluster) {
        const bins = await ensureTemporalServer(log);
        process.stdout.write(`${bins.server}\n${bins.sql}\n${bins.postgresSchema}\n`);
      }
      return 0;
    }
    case 'start': {
      const cli = await ensureTemporalCli(log);
      const port = values.port ? Number(values.port) : 7233;
      const info = await startDetachedDevServer(cli, dir, port);
      process.stdout.write(
        `${info.alreadyRunning ? 'already running' : 'started'} (pid ${info.pid}, state in ${dir})\n` +
          `Temporal: ${info.address}\nWeb UI:   ${info.uiUrl}\n`,
      );
      return 0;
    }
    case 'setup': {
      const target = await targetFromFlags(values, await temporalSectionOf(values.config));
      const client = await connectClient(target);
      const connection = client.connection as Connection;
      try {
        process.stdout.write(`setting up ${target.namespace} on ${target.address}\n`);
        await setupCluster({
          connection,
          namespace: target.namespace,
          log: (line) => process.stdout.write(`  ${line}\n`),
        });
        process.stdout.write('ready for xcp-backup\n');
        return 0;
      } finally {
        await client.connection.close();
      }
    }
    case 'stop': {
      const stopped = await stopDetachedDevServer(dir);
      process.stdout.write(stopped ? `stopped (pid ${stopped.pid})\n` : 'not running\n');
      return 0;
    }
    case 'status': {
      const running = await findRunningDevServer(dir);
      process.stdout.write(
        running ? `running: ${running.address}, Web UI ${running.uiUrl}\n` : 'not running\n',
      );
      return running ? 0 : 1;
    }
    default:
      throw new UsageError(
        'usage: xcpb server install [--cluster] | start [--port N] | stop | status | setup [--namespace X] [--config <file>] [connection flags]',
      );
  }
}
