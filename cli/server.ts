// `xcpb server install | start | stop | status`: the Temporal dev server for local use.
import {
  findRunningDevServer,
  startDetachedDevServer,
  stateDir,
  stopDetachedDevServer,
} from '../server/dev-server';
import { ensureTemporalCli } from '../server/temporal-cli';
import { positiveInt, type Register, run, withExamples } from './program';

const log = (line: string) => process.stderr.write(`${line}\n`);

export const registerServer: Register = (program) => {
  const server = withExamples(
    program
      .command('server')
      .description('the Temporal dev server for local use (state in ~/.local/state/xcpb)'),
    'xcpb server install',
    'xcpb server start --port 7233',
    'xcpb server status',
  );
  withExamples(
    server.command('install').description('build or find the pinned Temporal CLI; prints its path'),
    'xcpb server install',
  ).action(
    run(async () => {
      process.stdout.write(`${await ensureTemporalCli(log)}\n`);
      return 0;
    }),
  );
  withExamples(
    server
      .command('start')
      .description('start the dev server in the background (kept across runs)')
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
};
