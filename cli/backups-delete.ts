// `xcpb backups delete <backupId> --config <file> [--json]`: deletes one backup from its remote with
// the chain rules (a delta other backups chain on is merged into its child first), holding the VM's
// lock, so a run of the same VM cannot be writing meanwhile.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load';
import { formatProblems } from '../core/config/validate';
import { parseBackupId } from '../core/restore-backup-id';
import { BackupRepository } from '../remotes/backup-repository';
import { openRemote } from '../remotes/open-remote';
import { printJson, UsageError } from './output';

const USAGE = 'usage: xcpb backups delete <remoteId>:<vmUuid>/<ts> --config <file> [--json]';

export async function backupsDeleteCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string' }, json: { type: 'boolean' } },
  });
  if (!values.config || positionals.length !== 1) throw new UsageError(USAGE);
  let ref: ReturnType<typeof parseBackupId>;
  try {
    ref = parseBackupId(positionals[0]!);
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${USAGE}`);
  }
  const loaded = await loadConfigFile(values.config);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  const config = loaded.config.remotes.find((r) => r.id === ref.remoteId);
  if (!config) throw new UsageError(`no remote "${ref.remoteId}" in the config`);
  const repository = new BackupRepository(openRemote(config));
  const done = await repository.deleteBackupByName(ref.vmUuid, ref.basename, {
    owner: `xcpb backups delete on ${os.hostname()} (pid ${process.pid})`,
  });
  if (values.json) printJson({ deleted: positionals[0], done });
  else for (const step of done) process.stdout.write(`${step}\n`);
  return 0;
}
