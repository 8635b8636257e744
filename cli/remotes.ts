// `xcpb remotes test <id> --config <file> [--size MiB] [--json]`: writes, reads back (whole and by
// range), renames and deletes a test file on a configured remote, with the throughput of each step.
import { loadConfigFile } from '../config/load';
import { formatProblems } from '../core/config/validate';
import { openRemote } from '../remotes/open-remote';
import { testRemote } from '../remotes/remote-test';
import { green, printJson, red, UsageError } from './output';
import { positiveInt, type Register, run, withExamples } from './program';

export const registerRemotes: Register = (program) => {
  const remotes = withExamples(
    program.command('remotes').description('the backup remotes of a config file'),
    'xcpb remotes test offsite --config my.yaml',
  );
  withExamples(
    remotes
      .command('test')
      .description(
        'write, read back, ranged read, rename and delete a test file on a remote, with MiB/s of each step',
      )
      .argument('<remoteId>', 'a remote of the config file')
      .requiredOption('-c, --config <file>', 'the config file (its remotes)')
      .option('--size <MiB>', 'size of the test file', positiveInt, 32)
      .option('--json', 'as JSON'),
    'xcpb remotes test offsite -c my.yaml',
    'xcpb remotes test nas -c my.yaml --size 256 --json',
  ).action(run(testCommand));
};

async function testCommand(id: string, o: { config: string; size: number; json?: boolean }): Promise<number> {
  const loaded = await loadConfigFile(o.config);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  const config = loaded.config.remotes.find((r) => r.id === id);
  if (!config)
    throw new UsageError(
      `no remote "${id}" in the config (remotes: ${loaded.config.remotes.map((r) => r.id).join(', ') || 'none'})`,
    );
  const result = await testRemote(openRemote(config), o.size);
  if (o.json) printJson(result);
  else {
    for (const s of result.steps) {
      const speed = s.throughput === undefined ? '' : `  ${s.throughput.toFixed(1)} MiB/s`;
      const line = `${s.step.padEnd(12)} ${s.ok ? 'ok' : 'FAILED'}  ${s.ms.toFixed(0)} ms${speed}`;
      process.stdout.write(`${s.ok ? green(line) : red(`${line}  ${s.error}`)}\n`);
    }
  }
  return result.ok ? 0 : 1;
}
