// `xcpb restore <backupId> --config <file> --pool <id> --sr <uuid|name> [--start] [--new-macs] [--json]`:
// starts the `restoreVm` workflow on Temporal (TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE or --address /
// --namespace) and waits for it; a worker must serve the pool. Ids of `xcpb backups list`.
import { parseArgs } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { loadConfigFile } from '../config/load';
import { formatProblems } from '../core/config/validate';
import { parseBackupId } from '../core/restore-backup-id';
import { MAIN_QUEUE } from '../core/task-queues';
import { clientFromFlags, connectionOptions } from './connection-flags';
import { bold, dim, green, printJson, red, UsageError } from './output';

const USAGE =
  'usage: xcpb restore <backupId> --config <file> --pool <id> --sr <uuid|name> [--start] [--new-macs] [--json]';

interface RestoreResult {
  vmUuid: string;
  vmName: string;
  powerState: string;
  poolId: string;
  srUuid: string;
  mode: string;
  bytes: number;
  vdis: { uuid: string; nameLabel: string; virtualSize: number; suspend: boolean }[];
  networks: string[];
}

/** The innermost message of a failed workflow (the activity's own words). */
export function failureMessage(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.message) parts.push(e.message);
  }
  return parts.at(-1) ?? String(err);
}

export async function restoreCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      pool: { type: 'string' },
      sr: { type: 'string' },
      start: { type: 'boolean' },
      'new-macs': { type: 'boolean' },
      json: { type: 'boolean' },
      ...connectionOptions,
    },
  });
  if (positionals.length !== 1 || !values.config || !values.pool || !values.sr) throw new UsageError(USAGE);
  let backup: ReturnType<typeof parseBackupId>;
  try {
    backup = parseBackupId(positionals[0]);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const loaded = await loadConfigFile(values.config);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  const { config } = loaded;
  if (!config.pools.some((p) => p.id === values.pool))
    throw new UsageError(
      `no pool "${values.pool}" in the config (pools: ${config.pools.map((p) => p.id).join(', ')})`,
    );
  if (!config.remotes.some((r) => r.id === backup.remoteId))
    throw new UsageError(
      `no remote "${backup.remoteId}" in the config (remotes: ${config.remotes.map((r) => r.id).join(', ')})`,
    );
  const client = await clientFromFlags(values, config.temporal);
  const workflowId = `xcpb:restore:${backup.vmUuid}:${backup.basename}:${new Date().toISOString()}`;
  try {
    if (!values.json) process.stderr.write(dim(`restoring ${positionals[0]} (workflow ${workflowId})…\n`));
    const result = (await client.workflow.execute('restoreVm', {
      taskQueue: MAIN_QUEUE,
      workflowId,
      args: [
        {
          backupId: positionals[0],
          poolId: values.pool,
          sr: values.sr,
          start: values.start ?? false,
          newMacAddresses: values['new-macs'] ?? false,
        },
      ],
    })) as RestoreResult;
    if (values.json) printJson({ workflowId, ...result });
    else {
      process.stdout.write(
        `${green('restored')} ${bold(result.vmName)} ${result.vmUuid} on pool ${result.poolId} (${result.powerState})\n`,
      );
      for (const v of result.vdis)
        process.stdout.write(`  VDI ${v.uuid}  ${v.nameLabel}${v.suspend ? ' (memory)' : ''}\n`);
      for (const n of result.networks) process.stdout.write(dim(`  ${n}\n`));
    }
    return 0;
  } catch (err) {
    const message = err instanceof WorkflowFailedError ? failureMessage(err) : (err as Error).message;
    if (values.json) printJson({ workflowId, error: message });
    else process.stderr.write(`${red('restore failed')}: ${message}\n`);
    return 1;
  } finally {
    await client.connection.close();
  }
}
