// The shared parts of every `xcpb` command on commander: how a command runs (exit codes, errors),
// its examples in --help. The Temporal connection flags are in connection-flags.ts.
import { type Command, InvalidArgumentError } from 'commander';
import { UsageError } from './output';

/** Registers one command (and its subcommands) on the program. */
export type Register = (program: Command) => void;

/** "Examples:" at the end of the command's --help. */
export function withExamples(cmd: Command, ...examples: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
}

/**
 * The action of a command: its exit code becomes the process's. A UsageError exits 2 and any other
 * error 1, each as one line `xcpb <command>: <message>` (no stack: these are the user's errors). An
 * error of a namespace not prepared for xcp-backup says to run `xcpb server setup` instead of the
 * server's message (not for `server setup` itself: it is the fix, its errors are shown as they are).
 */
export function run<A extends unknown[]>(fn: (...args: A) => Promise<number>) {
  return async (...args: A): Promise<void> => {
    const cmd = args.at(-1) as Command;
    const path = commandPath(cmd);
    try {
      process.exitCode = await fn(...args);
    } catch (err) {
      const setupHint =
        err instanceof UsageError || path === 'server setup'
          ? undefined
          : await (await import('./connection-flags')).explainSetupFailure(err);
      process.stderr.write(`xcpb ${path}: ${setupHint ?? (err as Error).message}\n`);
      process.exitCode = err instanceof UsageError ? 2 : 1;
    }
  };
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Parses a positive integer option value (commander reports a refusal naming the option). */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/**
 * A command whose module parses its own arguments (`vhd`, `sim`): commander passes them through
 * and shows the module's own usage for --help.
 */
export function passThrough(
  program: Command,
  name: string,
  summary: string,
  usage: string,
  handler: (argv: string[]) => Promise<number>,
  ...examples: string[]
): Command {
  const cmd = program
    .command(name)
    .description(summary)
    .argument('[args...]')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(
      run(async (args: string[]) => {
        if (args.includes('--help') || args.includes('-h')) {
          process.stdout.write(
            `${usage.trimEnd()}\n${examples.length ? `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n` : ''}`,
          );
          return 0;
        }
        return handler(args);
      }),
    );
  return cmd;
}

/** Resolves on the first SIGINT or SIGTERM: a command that runs until stopped (`sim`, `demo`). */
export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
}
