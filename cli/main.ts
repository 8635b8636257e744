// `xcpb <command>`: dispatch to one module per command group.
import { UsageError } from './output';

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  server: {
    summary: 'install | start | stop | status the Temporal dev server',
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
    summary: '--config <file> [--pool <id>...]  run the workers until Ctrl-C',
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
  replicas: {
    summary:
      'list --config <file> [--job <id>] [--json] | start <replica> --config <file>  DR/CR replicas, fail over',
    load: async () => (await import('./replicas')).replicasCommand,
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
    'usage: xcpb <command> [options]',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Temporal connection: --address / TEMPORAL_ADDRESS (localhost:7233), --namespace / TEMPORAL_NAMESPACE (default)',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
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
    process.stderr.write(`xcpb ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}
