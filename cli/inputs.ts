// What several commands take from their arguments, checked one way for all: the config file (its
// problems listed, exit 2), a remote of it by id, a backup id as `xcpb backups list` prints it.
import { loadConfigFile } from '../config/load';
import type { Config, RemoteConfig } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import { type BackupRef, parseBackupId } from '../core/restore-backup-id';
import { UsageError } from './output';

/** The config file, valid; else a UsageError listing its problems. */
export async function configArg(file: string): Promise<Config> {
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) throw new UsageError(formatProblems(loaded.problems));
  return loaded.config;
}

/** The remote of the config with this id; else a UsageError naming the remotes there are. */
export function remoteArg(config: Pick<Config, 'remotes'>, id: string): RemoteConfig {
  const remote = config.remotes.find((r) => r.id === id);
  if (!remote)
    throw new UsageError(
      `no remote "${id}" in the config (remotes: ${config.remotes.map((r) => r.id).join(', ') || 'none'})`,
    );
  return remote;
}

/** `<remoteId>:<vmUuid>/<timestamp>`; else a UsageError saying what is wrong with it. */
export function backupIdArg(id: string): BackupRef {
  try {
    return parseBackupId(id);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
