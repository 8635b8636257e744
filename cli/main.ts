// `xcpb <command>`: commander, with one module per command. Only the module of the command typed is
// loaded (the worker and demo modules pull in the Temporal worker); the table's summaries serve the
// top-level help and the suggestions for a mistyped command.
import { readFile } from 'node:fs/promises';
import { Command, CommanderError } from 'commander';
import type { Register } from './program';

const commands: Record<string, { summary: string; load: () => Promise<Register> }> = {
  server: {
    summary: 'install | start | stop | status the Temporal dev server; setup prepares any cluster',
    load: async () => (await import('./server')).registerServer,
  },
  config: {
    summary: 'validate a config file, or print its JSON Schema',
    load: async () => (await import('./config')).registerConfig,
  },
  schema: {
    summary: 'JSON Schema of a start input or of the run report',
    load: async () => (await import('./schema')).registerSchema,
  },
  apply: {
    summary: "make the Temporal schedules match a config's jobs",
    load: async () => (await import('./apply')).registerApply,
  },
  schedules: {
    summary: 'list the schedules and their next runs',
    load: async () => (await import('./apply')).registerSchedules,
  },
  worker: {
    summary: 'run the workers until Ctrl-C',
    load: async () => (await import('./worker')).registerWorker,
  },
  run: { summary: 'run a job now and follow it', load: async () => (await import('./run')).registerRun },
  runs: {
    summary: "recent runs, or one run's report (show <id> [--follow])",
    load: async () => (await import('./runs')).registerRuns,
  },
  cancel: {
    summary: 'cancel a run (its snapshots are still cleaned up)',
    load: async () => (await import('./runs')).registerCancel,
  },
  preview: {
    summary: 'which VMs a run would take now, and why not the others',
    load: async () => (await import('./preview')).registerPreview,
  },
  demo: {
    summary: 'the whole stack on the simulator: two runs, then the Web UI',
    load: async () => (await import('./demo')).registerDemo,
  },
  remotes: {
    summary: 'test a remote: write, read back, ranged read, rename, delete; MiB/s',
    load: async () => (await import('./remotes')).registerRemotes,
  },
  backups: {
    summary: 'list the backups on the remotes, with their ids; delete one',
    load: async () => (await import('./backups')).registerBackups,
  },
  files: {
    summary: 'list and fetch files inside a delta backup',
    load: async () => {
      const [{ filesCommand, FILES_USAGE }, { passThrough }] = await Promise.all([
        import('./files'),
        import('./program'),
      ]);
      return (program) =>
        passThrough(
          program,
          'files',
          'list and fetch files inside a delta backup',
          FILES_USAGE,
          filesCommand,
          'xcpb files ls <backupId> --config xcpb.yaml /etc',
          'xcpb files get <backupId> /etc/hosts /home -o files.tar.gz --config xcpb.yaml',
        );
    },
  },
  replicas: {
    summary: 'list the DR/CR replicas, or start one (failover on a clone)',
    load: async () => (await import('./replicas')).registerReplicas,
  },
  restore: { summary: 'restore a VM backup', load: async () => (await import('./restore')).registerRestore },
  sim: { summary: 'the XAPI simulator', load: async () => (await import('./sim')).registerSim },
  vhd: {
    summary: 'inspect, check and convert VHD files',
    load: async () => (await import('./vhd')).registerVhd,
  },
};

export const COMMAND_NAMES = Object.keys(commands);

async function packageVersion(): Promise<string> {
  const file = new URL('../package.json', import.meta.url);
  return (JSON.parse(await readFile(file, 'utf8')) as { version: string }).version;
}

async function program(): Promise<Command> {
  return (
    new Command('xcpb')
      .version(`xcpb ${await packageVersion()}`, '-V, --version', 'the version of xcp-backup')
      .description('Backups of XCP-ng / Citrix Hypervisor pools, each run a durable Temporal workflow.')
      .usage('<command> [options]')
      // A command's flags are its own: `runs show <id> --json` is show's --json, not runs'.
      .enablePositionalOptions()
      .showSuggestionAfterError()
      .showHelpAfterError('(add --help for usage)')
      .exitOverride()
      .addHelpText(
        'after',
        '\nEvery command has --help with examples. Temporal: --address / TEMPORAL_ADDRESS, --namespace / TEMPORAL_NAMESPACE,\n' +
          'TLS and API key flags / TEMPORAL_TLS_*, TEMPORAL_API_KEY, or the config file\'s "temporal:" section;\n' +
          'a new cluster or namespace is prepared by `xcpb server setup`.\n',
      )
  );
}

export async function main(argv: string[]): Promise<number> {
  const root = await program();
  const entry = argv[0] !== undefined ? commands[argv[0]] : undefined;
  if (entry) (await entry.load())(root);
  else for (const [name, c] of Object.entries(commands)) root.command(name).description(c.summary);
  // Commander's own refusals (unknown option or command, missing argument) exit 2, help exits 0.
  root.exitOverride();
  for (const c of root.commands) inheritSettings(c);
  if (argv.length === 0) {
    root.outputHelp({ error: true });
    return 2;
  }
  process.exitCode = undefined;
  try {
    await root.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    return err.exitCode === 0 ? 0 : 2;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

function inheritSettings(cmd: Command): void {
  cmd.exitOverride().showSuggestionAfterError().showHelpAfterError('(add --help for usage)');
  for (const c of cmd.commands) inheritSettings(c);
}
