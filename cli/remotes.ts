import { openRemote } from '../remotes/open-remote';
import { testRemote } from '../remotes/remote-test';
import { configArg, remoteArg } from './inputs';
import { green, printJson, red } from './output';
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
  const config = remoteArg(await configArg(o.config), id);
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
