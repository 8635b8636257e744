// The JSON Schemas of what crosses the product's edge, generated from the zod schemas that check it:
// the start inputs (what a caller may send: defaults optional), the run's result (what Temporal gives
// back) and the full run report (stored beside the backups).
// Printed by `xcpb schema <name>`, checked in under docs/schemas/ (kept current by a test).
import { z } from 'zod';
import { RunReportSchema, RunResultSchema } from './run-report';
import { BackupJobInputObject, RestoreInputSchema } from './start-contract';

export const JSON_SCHEMAS = {
  'backup-job-input': () => z.toJSONSchema(BackupJobInputObject, { io: 'input' }),
  'restore-input': () => z.toJSONSchema(RestoreInputSchema, { io: 'input' }),
  'run-report': () => z.toJSONSchema(RunReportSchema, { io: 'output' }),
  /** what backupJob returns (or carries in its failure): bounded, pointing at the stored run report */
  'run-result': () => z.toJSONSchema(RunResultSchema, { io: 'output' }),
} as const;

export type JsonSchemaName = keyof typeof JSON_SCHEMAS;
export const JSON_SCHEMA_NAMES = Object.keys(JSON_SCHEMAS) as JsonSchemaName[];

export function jsonSchemaText(name: JsonSchemaName): string {
  return `${JSON.stringify(JSON_SCHEMAS[name](), null, 2)}\n`;
}
