import type { Config } from '../core/config/schema';
import { formatBackupId } from '../core/restore-backup-id';
import { formatBytes } from '../core/words';
import { resolveInVmDir } from '../remotes/backup-paths';
import { BackupRepository } from '../remotes/backup-repository';
import { openRemote } from '../remotes/open-remote';
import type { BackupEntry } from '../remotes/repository';
import { registerBackupsDelete } from './backups-delete';
import { configArg, remoteArg } from './inputs';
import { printJson, red, terminalStyle } from './output';
import { type Register, run, withExamples } from './program';
import { plainStyle, type Style } from './report-format';
import { formatTable } from './table';
import { formatInZone, localZone, zoneInConfig } from './zones';

export interface BackupRow {
  id: string;
  remoteId: string;
  vmUuid: string;
  vmName: string;
  time: string;
  mode: 'full' | 'delta' | 'unknown';
  jobId?: string;
  scheduleId?: string;
  size?: number;
  /** VHD files from the newest disk's tip to its full (1 for a key backup, 0 for an XVA) */
  chainLength: number;
  status: BackupEntry['status'];
  problems: string[];
}

export async function listBackupRows(
  config: Config,
  filter: { remote?: string; vm?: string } = {},
): Promise<{ rows: BackupRow[]; errors: { remoteId: string; error: string }[] }> {
  const remotes = filter.remote ? [remoteArg(config, filter.remote)] : config.remotes;
  const rows: BackupRow[] = [];
  const errors: { remoteId: string; error: string }[] = [];
  for (const rc of remotes) {
    let entries: BackupEntry[];
    let repository: BackupRepository;
    try {
      repository = BackupRepository.readOnly(openRemote(rc));
      entries = await repository.listAllBackups();
    } catch (err) {
      errors.push({ remoteId: rc.id, error: (err as Error).message });
      continue;
    }
    for (const e of entries) {
      const meta = e.metadata;
      const vmName = String((meta?.vm as { name_label?: unknown } | undefined)?.name_label ?? '');
      if (filter.vm && filter.vm !== e.vmUuid && filter.vm !== vmName) continue;
      let chainLength = 0;
      if (meta?.mode === 'delta' && e.status === 'ok') {
        for (const ref of Object.values(meta.vhds)) {
          chainLength = Math.max(
            chainLength,
            (await repository.chainLength(resolveInVmDir(e.vmUuid, ref))) ?? 0,
          );
        }
      }
      rows.push({
        id: formatBackupId({ remoteId: rc.id, vmUuid: e.vmUuid, basename: e.basename }),
        remoteId: rc.id,
        vmUuid: e.vmUuid,
        vmName,
        time: e.timestamp ? new Date(e.timestamp).toISOString() : '',
        mode: meta?.mode ?? 'unknown',
        jobId: meta?.jobId,
        scheduleId: meta?.scheduleId,
        size: meta?.size,
        chainLength,
        status: e.status,
        problems: e.problems,
      });
    }
  }
  return { rows, errors };
}

/**
 * The `xcpb backups list` table; each time in its schedule's zone (`zoneOf`), a broken or partial
 * entry painted, its problems listed under the table.
 */
export function formatBackupTable(
  rows: readonly BackupRow[],
  style: Style = plainStyle,
  zoneOf: (row: BackupRow) => string = () => localZone(),
): string {
  if (rows.length === 0) return 'no backups';
  const paint = (r: BackupRow) =>
    r.status === 'ok' ? (t: string) => t : r.status === 'broken' ? style.red : style.orange;
  const table = formatTable(
    ['ID', 'VM', 'TIME', 'MODE', 'JOB', 'SIZE', 'CHAIN', 'STATUS'],
    rows.map((r) =>
      [
        r.id,
        r.vmName || '?',
        r.time ? formatInZone(r.time, zoneOf(r)) : '?',
        r.mode,
        r.jobId ?? '-',
        r.size === undefined ? '-' : formatBytes(r.size),
        r.mode === 'delta' ? String(r.chainLength) : '-',
        r.status,
      ].map(paint(r)),
    ),
    style,
  );
  const problems = rows
    .filter((r) => r.status !== 'ok' && r.problems.length > 0)
    .flatMap((r) => [paint(r)(`${r.id} is ${r.status}:`), ...r.problems.map((p) => style.dim(`    ${p}`))]);
  return [table, ...problems].join('\n');
}

export const registerBackups: Register = (program) => {
  const backups = withExamples(
    program.command('backups').description("the VM backups on the remotes (ours and Xen Orchestra's)"),
    'xcpb backups list --config my.yaml',
    'xcpb backups delete offsite:4f1c…/20261102T030000Z --config my.yaml',
  );
  withExamples(
    backups
      .command('list')
      .description(
        'every backup with the id `xcpb restore` takes; a broken entry is listed with its problems',
      )
      .requiredOption('-c, --config <file>', 'the config file (its remotes)')
      .option('--remote <id>', 'only this remote')
      .option('--vm <uuid|name>', 'only this VM')
      .option('--json', 'as JSON'),
    'xcpb backups list -c my.yaml',
    'xcpb backups list -c my.yaml --vm db-prod-01 --json',
  ).action(
    run(async (o: { config: string; remote?: string; vm?: string; json?: boolean }) => {
      const config = await configArg(o.config);
      const { rows, errors } = await listBackupRows(config, { remote: o.remote, vm: o.vm });
      if (o.json) printJson({ backups: rows, errors });
      else {
        const zoneOf = (row: BackupRow) => zoneInConfig(config, row) ?? localZone();
        process.stdout.write(`${formatBackupTable(rows, terminalStyle, zoneOf)}\n`);
        for (const e of errors) process.stderr.write(`${red(`remote ${e.remoteId}: ${e.error}`)}\n`);
      }
      return errors.length > 0 ? 1 : 0;
    }),
  );
  registerBackupsDelete(backups);
};
