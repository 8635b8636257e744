// `xcpb restore <backupId> --config <file> --pool <id> --sr <uuid|name> [--start] [--new-macs] [--json]`:
// starts the `restoreVm` workflow on Temporal (TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE or --address /
// --namespace) and waits for it; a worker must serve the pool. Ids of `xcpb backups list`.
import { type Client, WorkflowFailedError } from '@temporalio/client';
import { innermostMessage } from '../client/backup-client';
import { getRestoreState } from '../client/restore-progress';
import { restoreOutcomeOf } from '../client/run-result';
import { formatBackupId } from '../core/restore-backup-id';
import { MAIN_QUEUE } from '../core/task-queues';
import { restoreSummary } from '../core/ui-text';
import { openRemote } from '../remotes/open-remote';
import { listVmBackups } from '../remotes/repository';
import { type ConnectionFlags, clientFromFlags, withConnectionOptions } from './connection-flags';
import { backupIdArg, configArg, remoteArg } from './inputs';
import { bold, dim, green, printJson, red, UsageError } from './output';
import { type Register, run, withExamples } from './program';
import { ProgressBars } from './progress-bars';

export const registerRestore: Register = (program) => {
  withExamples(
    withConnectionOptions(
      program
        .command('restore')
        .description('restore a VM backup onto an SR of a configured pool (a worker must serve the pool)')
        .argument('<backupId>', '<remoteId>:<vmUuid>/<timestamp>, as `xcpb backups list` prints it')
        .requiredOption('-c, --config <file>', 'the config file')
        .requiredOption('--pool <id>', 'the pool to restore onto')
        .requiredOption('--sr <uuid|name>', 'the SR of that pool')
        .option('--start', 'start the restored VM')
        .option('--new-macs', 'new MAC addresses for the VIFs (delta restores)')
        .option('--json', 'print the result as JSON'),
    ),
    'xcpb restore nas:3f2b…/20260115T020000Z --config my.yaml --pool lab --sr "Local storage"',
    'xcpb restore <backupId> -c my.yaml --pool dr --sr <sr-uuid> --start --new-macs --json',
  ).action(run(restore));
};

interface RestoreFlags extends ConnectionFlags {
  config: string;
  pool: string;
  sr: string;
  start?: boolean;
  newMacs?: boolean;
  json?: boolean;
}

async function restore(backupId: string, values: RestoreFlags): Promise<number> {
  const backup = backupIdArg(backupId);
  const config = await configArg(values.config);
  if (!config.pools.some((p) => p.id === values.pool))
    throw new UsageError(
      `no pool "${values.pool}" in the config (pools: ${config.pools.map((p) => p.id).join(', ')})`,
    );
  const remoteConfig = remoteArg(config, backup.remoteId);
  // A well-formed id of no backup is refused here, before any workflow starts.
  const known = await listVmBackups(openRemote(remoteConfig), backup.vmUuid);
  if (!known.some((b) => b.basename === backup.basename)) {
    const newest = known.at(-1);
    throw new UsageError(
      `no backup ${backupId} on remote ${backup.remoteId} (${known.length ? `that VM has ${known.length} backups, the newest ${formatBackupId({ ...backup, basename: newest!.basename })}` : 'no backup of that VM there'}; see \`xcpb backups list\`)`,
    );
  }
  const client = await clientFromFlags(values, config.temporal);
  const workflowId = `xcpb:restore:${backup.vmUuid}:${backup.basename}:${new Date().toISOString()}`;
  try {
    if (!values.json) process.stderr.write(dim(`restoring ${backupId} (workflow ${workflowId})…\n`));
    const handle = await client.workflow.start('restoreVm', {
      taskQueue: MAIN_QUEUE,
      workflowId,
      staticSummary: restoreSummary(backupId, values.pool, values.sr),
      args: [
        {
          backupId: backupId,
          poolId: values.pool,
          sr: values.sr,
          start: values.start ?? false,
          newMacAddresses: values.newMacs ?? false,
        },
      ],
    });
    const outcome = await withRestoreBar(client, workflowId, !values.json && process.stderr.isTTY, () =>
      restoreOutcomeOf(handle),
    );
    if (!outcome.ok) {
      const { message, failure } = outcome;
      if (values.json) printJson({ workflowId, error: message, failedIn: failure.failedIn });
      else process.stderr.write(`${red('restore failed')} (${failure.failedIn}): ${message}\n`);
      return 1;
    }
    const result = outcome.result;
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
    const message = err instanceof WorkflowFailedError ? innermostMessage(err) : (err as Error).message;
    if (values.json) printJson({ workflowId, error: message });
    else process.stderr.write(`${red('restore failed')}: ${message}\n`);
    return 1;
  } finally {
    await client.connection.close();
  }
}

/** While `wait` runs, a progress bar of the restore on the terminal (percentage, rate, ETA). */
async function withRestoreBar<T>(
  client: Client,
  workflowId: string,
  show: boolean,
  wait: () => Promise<T>,
): Promise<T> {
  if (!show) return wait();
  const bars = new ProgressBars(process.stderr);
  const start = Date.now();
  let done = false;
  const polling = (async () => {
    while (!done) {
      const state = await getRestoreState(client, workflowId).catch(() => undefined);
      if (state)
        bars.update([
          {
            name: state.vmName ?? 'restore',
            bytes: state.bytes,
            total: state.total,
            start,
            doing: state.phase,
          },
        ]);
      await new Promise((r) => setTimeout(r, 1_000));
    }
  })();
  try {
    return await wait();
  } finally {
    done = true;
    await polling;
    bars.stop();
  }
}
