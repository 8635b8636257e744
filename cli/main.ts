// `xcpb <command>`: dispatch to one module per command group.
import { CONNECTION_HELP } from './connection-flags';
import { UsageError } from './output';

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  server: {
    summary: 'install | start | stop | status the Temporal dev server; setup prepares any cluster',
    load: async () => (await import('./server')).serverCommand,
  },
  config: { summary: 'validate <file> | schema', load: async () => (await import('./config')).configCommand },
  apply: {
    summary: '<file> [--dry-run]  make the Temporal schedules match the config',
    load: async () => (await import('./apply')).applyCommand,
  },
  schedules: {
    summary: '[--json]  list schedules and their next runs',
    load: async () => (await import('./apply')).schedulesCommand,
  },
  worker: {
    summary: '--config <file> [--pool <id>...] [--metrics host:port]  run the workers until Ctrl-C',
    load: async () => (await import('./worker')).workerCommand,
  },
  run: {
    summary: '<jobId> --config <file> [--schedule <id>] [--no-wait] [--json]  run a job now',
    load: async () => (await import('./run')).runCommand,
  },
  runs: {
    summary: "[--job <id>] [--limit N] [--json] | show <workflowId>  recent runs, one run's report",
    load: async () => (await import('./runs')).runsCommand,
  },
  cancel: {
    summary: '<workflowId> [--wait]  cancel a run (its snapshots are still cleaned up)',
    load: async () => (await import('./runs')).cancelCommand,
  },
  preview: {
    summary: '<jobId> --config <file> [--json]  which VMs a run would take now, and why not the others',
    load: async () => (await import('./preview')).previewCommand,
  },
  demo: {
    summary: '[--once] [--port N]  the whole stack on the simulator: two runs, then the Web UI',
    load: async () => (await import('./demo')).demoCommand,
  },
  backups: {
    summary:
      'list --config <file> [--remote <id>] [--vm <uuid|name>] [--json]  backups on the remotes, with their ids',
    load: async () => (await import('./backups')).backupsCommand,
  },
  restore: {
    summary:
      '<backupId> --config <file> --pool <id> --sr <uuid|name> [--start] [--json]  restore a VM backup',
    load: async () => (await import('./restore')).restoreCommand,
  },
  sim: {
    summary: '--scenario <file|demo> [--port N] [--data-dir DIR]  the XAPI simulator',
    load: async () => (await import('./sim')).simCommand,
  },
  vhd: {
    summary: 'inspect, check and convert VHD files',
    load: async () => {
      const { vhdCommand } = await import('./vhd');
      return (argv) => vhdCommand(argv);
    },
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'usage: xcpb <command> [options]    (xcpb --version)',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    CONNECTION_HELP,
  ].join('\n');
}

async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const file = new URL('../package.json', import.meta.url);
  return (JSON.parse(await readFile(file, 'utf8')) as { version: string }).version;
}

/** An unset-up namespace in one line naming `xcpb server setup`, else the error's own message. */
async function describeFailure(err: unknown): Promise<string> {
  const { currentTarget } = await import('./connection-flags');
  const { explainSetupError } = await import('../client/setup-errors');
  const target = currentTarget();
  return (target && explainSetupError(err, target.namespace)) || (err as Error).message;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    process.stdout.write(`xcpb ${await packageVersion()}\n`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`xcpb: unknown command "${name}"\n${usage()}\n`);
    return 2;
  }
  try {
    return await (await command.load())(rest);
  } catch (err) {
    if (
      err instanceof UsageError ||
      (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
    ) {
      process.stderr.write(`xcpb ${name}: ${(err as Error).message}\n`);
      return 2;
    }
    // `server setup` is the fix itself: its errors are shown as they are.
    const message = name === 'server' ? (err as Error).message : await describeFailure(err);
    process.stderr.write(`xcpb ${name}: ${message}\n`);
    return 1;
  }
}
