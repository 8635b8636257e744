// `xcpb backups delete <backupId> --config <file> [--json]`: deletes one backup from its remote with
// the chain rules (a delta other backups chain on is merged into its child first), holding the VM's
// lock, so a run of the same VM (or Xen Orchestra) cannot be writing meanwhile.
import os from 'node:os';
import type { Command } from 'commander';
import { BackupRepository } from '../remotes/backup-repository';
import { openRemote } from '../remotes/open-remote';
import { backupIdArg, configArg, remoteArg } from './inputs';
import { printJson } from './output';
import { run, withExamples } from './program';

/** Adds `delete` under the `backups` command. */
export function registerBackupsDelete(backups: Command): void {
  withExamples(
    backups
      .command('delete')
      .description(
        'delete one backup by the chain rules: a delta newer backups chain on is merged into its child first',
      )
      .argument('<backupId>', '<remoteId>:<vmUuid>/<timestamp>, as `xcpb backups list` prints it')
      .requiredOption('-c, --config <file>', 'the config file (its remotes)')
      .option('--json', 'print what was done as JSON'),
    'xcpb backups delete offsite:4f1c…/20261102T030000Z -c my.yaml',
    'xcpb backups delete nas:4f1c…/20261101T030000Z -c my.yaml --json',
  ).action(run(deleteBackup));
}

async function deleteBackup(id: string, o: { config: string; json?: boolean }): Promise<number> {
  const ref = backupIdArg(id);
  const config = remoteArg(await configArg(o.config), ref.remoteId);
  const repository = new BackupRepository(openRemote(config));
  const done = await repository.deleteBackupByName(ref.vmUuid, ref.basename, {
    owner: `xcpb backups delete on ${os.hostname()} (pid ${process.pid})`,
  });
  if (o.json) printJson({ deleted: id, done });
  else for (const step of done) process.stdout.write(`${step}\n`);
  return 0;
}
