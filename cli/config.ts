// `xcpb config validate <file>` and `xcpb config schema`.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadConfigFile } from '../config/load';
import { Config } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import { UsageError } from './output';

export async function configCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'validate') {
    const { positionals } = parseArgs({ args: rest, allowPositionals: true });
    if (positionals.length !== 1) throw new UsageError('usage: xcpb config validate <file>');
    const result = await loadConfigFile(positionals[0]);
    if (!result.ok) {
      process.stderr.write(`${formatProblems(result.problems)}\n`);
      return 2;
    }
    process.stdout.write('ok\n');
    return 0;
  }
  if (sub === 'schema') {
    process.stdout.write(`${JSON.stringify(z.toJSONSchema(Config, { io: 'input' }), null, 2)}\n`);
    return 0;
  }
  throw new UsageError('usage: xcpb config validate <file> | xcpb config schema');
}
