// `xcpb schema <backup-job-input | run-result | run-report | restore-input>`: the JSON Schema of a start input or
// of what a run gives back: its bounded result and its full (stored) report (also in docs/schemas/).
import { Argument } from 'commander';
import { JSON_SCHEMA_NAMES, type JsonSchemaName, jsonSchemaText } from '../core/json-schemas';
import { type Register, run, withExamples } from './program';

export const registerSchema: Register = (program) => {
  withExamples(
    program
      .command('schema')
      .description(
        'JSON Schema of what backupJob / restoreVm accept, of the run result backupJob returns, or of the full run report',
      )
      .addArgument(new Argument('<name>', 'which schema').choices(JSON_SCHEMA_NAMES)),
    'xcpb schema backup-job-input',
    'xcpb schema run-report > run-report.schema.json',
  ).action(
    run(async (name: JsonSchemaName) => {
      process.stdout.write(jsonSchemaText(name));
      return 0;
    }),
  );
};
