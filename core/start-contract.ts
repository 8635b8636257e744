// The start contract of the workflows users start themselves (`backupJob`, `restoreVm`): zod schemas
// built from the config's own, so a run started from any program (the `temporal` CLI, a plain
// @temporalio/client program) gets the same checks and defaults as one started from a config file.
// The workflows parse their input with these first: a bad input fails the workflow at once,
// non-retryable, naming the field, before any activity runs. Pure; bundled into the workflows.
import { z } from 'zod';
import { formatPath } from './config/path';
import { CopyRetention, HealthCheck, Job, Retention } from './config/schema';
import { FAILURE_TYPES, failedWith } from './outcome-failure';
import { parseBackupId } from './restore-backup-id';

const id = Job.shape.id;

/** The backupJob input as documented (docs/schemas/backup-job-input.json). */
export const BackupJobInputObject = z
  .strictObject({
    job: Job.omit({ schedules: true }).describe('the job, as in the config file (without its schedules)'),
    scheduleId: id.optional().describe('the schedule whose run this is; omitted for a manual run'),
    retention: Retention.default({ remote: 0, snapshot: 0 }).describe(
      "the schedule's retention; the default keeps every backup and no snapshot beyond the delta base",
    ),
    copyRetention: CopyRetention,
    timezone: z.string().default('UTC').describe('IANA zone of the schedule (backup names, retention)'),
    healthCheck: HealthCheck.optional(),
  })
  .describe('input of the backupJob workflow (task queue xcpb)');

/**
 * Inputs written before `copyRetention` (schedules applied by an older `xcpb apply`, runs already in
 * history) carry the replicas kept as `retention.replica`: read as `copyRetention`, so they still
 * run (and replay) as they did. The config file and this contract's schema only know `copyRetention`.
 */
function movedCopyRetention(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null) return raw;
  const input = raw as Record<string, unknown>;
  const retention = input.retention;
  if (typeof retention !== 'object' || retention === null || !('replica' in retention)) return raw;
  const { replica, ...rest } = retention as Record<string, unknown>;
  return { ...input, retention: rest, copyRetention: input.copyRetention ?? replica };
}

export const BackupJobInputSchema = z.preprocess(movedCopyRetention, BackupJobInputObject);

export const RestoreInputSchema = z
  .strictObject({
    backupId: z
      .string()
      .superRefine((value, ctx) => {
        try {
          parseBackupId(value);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .describe('<remoteId>:<vmUuid>/<timestamp>, as `xcpb backups list` prints it'),
    poolId: id.describe('the configured pool to restore onto'),
    sr: z.string().min(1).describe('SR uuid or name on that pool'),
    start: z.boolean().default(false).describe('start the restored VM'),
    newMacAddresses: z
      .boolean()
      .default(false)
      .describe('new MAC addresses for the VIFs (delta restores); default: the backed-up MACs'),
  })
  .describe('input of the restoreVm workflow (task queue xcpb)');

/** What a caller passes (defaults may be left out). */
export type BackupJobStartInput = z.input<typeof BackupJobInputObject>;
/** What the workflow works with (defaults filled). */
export type BackupJobInput = z.output<typeof BackupJobInputObject>;
export type RestoreStartInput = z.input<typeof RestoreInputSchema>;
export type RestoreInput = z.output<typeof RestoreInputSchema>;

export interface InputProblem {
  path: string;
  message: string;
}

/**
 * The parsed input with its defaults, or a non-retryable `XcpbInvalidInput` failure naming each
 * field at fault (`job.mode: Invalid option: …`), its problems in the details.
 */
export function parseStartInput<S extends z.ZodType>(
  workflowType: string,
  schema: S,
  raw: unknown,
): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems: InputProblem[] = parsed.error.issues.map((i) => ({
    path: formatPath(i.path),
    message: i.message,
  }));
  const text = problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; ');
  throw failedWith(FAILURE_TYPES.input, `invalid ${workflowType} input: ${text}`, problems);
}
