// `xcpb schema <backup-job-input | run-report | restore-input>`: the JSON Schema of a start input or
// of the run report (also in docs/schemas/).
import { JSON_SCHEMA_NAMES, type JsonSchemaName, jsonSchemaText } from '../core/json-schemas';
import { UsageError } from './output';

export async function schemaCommand(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!JSON_SCHEMA_NAMES.includes(name as JsonSchemaName) || rest.length > 0)
    throw new UsageError(`usage: xcpb schema <${JSON_SCHEMA_NAMES.join(' | ')}>`);
  process.stdout.write(jsonSchemaText(name as JsonSchemaName));
  return 0;
}
