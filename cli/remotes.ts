// `xcpb remotes test <id> --config <file> [--size MiB] [--json]`: writes, reads back (whole and by
// range), renames and deletes a test file on a configured remote, with the throughput of each step.
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load';
import { formatProblems } from '../core/config/validate';
import { openRemote } from '../remotes/open-remote';
import { testRemote } from '../remotes/remote-test';
import { green, printJson, red, UsageError } from './output';

const USAGE = 'usage: xcpb remotes test <remoteId> --config <file> [--size <MiB>] [--json]';

export async function remotesCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'test') throw new UsageError(USAGE);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { config: { type: 'string' }, size: { type: 'string' }, json: { type: 'boolean' } },
  });
  const size = values.size === undefined ? 32 : Number(values.size);
  if (!values.config || positionals.length !== 1 || !Number.isInteger(size) || size < 1)
    throw new UsageError(USAGE);
  const loaded = await loadConfigFile(values.config);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  const config = loaded.config.remotes.find((r) => r.id === positionals[0]);
  if (!config)
    throw new UsageError(
      `no remote "${positionals[0]}" in the config (remotes: ${loaded.config.remotes.map((r) => r.id).join(', ') || 'none'})`,
    );
  const result = await testRemote(openRemote(config), size);
  if (values.json) printJson(result);
  else {
    for (const s of result.steps) {
      const speed = s.throughput === undefined ? '' : `  ${s.throughput.toFixed(1)} MiB/s`;
      const line = `${s.step.padEnd(12)} ${s.ok ? 'ok' : 'FAILED'}  ${s.ms.toFixed(0)} ms${speed}`;
      process.stdout.write(`${s.ok ? green(line) : red(`${line}  ${s.error}`)}\n`);
    }
  }
  return result.ok ? 0 : 1;
}
