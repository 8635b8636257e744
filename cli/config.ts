// `xcpb config validate <file>` and `xcpb config schema`.
import { z } from 'zod';
import { loadConfigFile } from '../config/load';
import { Config } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import { type Register, run, withExamples } from './program';

export const registerConfig: Register = (program) => {
  const config = withExamples(
    program
      .command('config')
      .description('check a config file, or print the JSON Schema editors complete it from'),
    'xcpb config validate examples/config.yaml',
    'xcpb config schema > xcpb.schema.json',
  );
  withExamples(
    config
      .command('validate')
      .description('exit 0 and "ok" when the file is valid; else every problem with its field, exit 2')
      .argument('<file>', 'YAML or JSON config file'),
    'xcpb config validate my.yaml',
  ).action(
    run(async (file: string) => {
      const result = await loadConfigFile(file);
      if (!result.ok) {
        process.stderr.write(`${formatProblems(result.problems)}\n`);
        return 2;
      }
      process.stdout.write('ok\n');
      return 0;
    }),
  );
  withExamples(
    config.command('schema').description("the config file's JSON Schema"),
    'xcpb config schema > xcpb.schema.json',
  ).action(
    run(async () => {
      process.stdout.write(`${JSON.stringify(z.toJSONSchema(Config, { io: 'input' }), null, 2)}\n`);
      return 0;
    }),
  );
};
