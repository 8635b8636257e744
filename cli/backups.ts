// `xcpb backups list --config <file> [--remote <id>] [--vm <uuid|name>] [--json]`: every VM backup on
// the remotes (ours and Xen Orchestra's, same layout), with the id `xcpb restore` takes. A broken or
// partial entry is listed as such with its problems; an unreachable remote is reported, not fatal.
import { loadConfigFile } from '../config/load';
import type { Config } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import { formatBackupId } from '../core/restore-backup-id';
import { resolveInVmDir } from '../remotes/backup-paths';
import { BackupRepository } from '../remotes/backup-repository';
import { openRemote } from '../remotes/open-remote';
import type { BackupEntry } from '../remotes/repository';
import { registerBackupsDelete } from './backups-delete';
import { dim, orange, printJson, red, UsageError } from './output';
import { type Register, run, withExamples } from './program';

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
  const remotes = config.remotes.filter((r) => !filter.remote || r.id === filter.remote);
  if (filter.remote && remotes.length === 0) {
    throw new UsageError(
      `no remote "${filter.remote}" in the config (remotes: ${config.remotes.map((r) => r.id).join(', ') || 'none'})`,
    );
  }
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

function humanSize(bytes?: number): string {
  if (bytes === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes;
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${n.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

export function formatBackupTable(rows: BackupRow[]): string {
  if (rows.length === 0) return 'no backups';
  const table = rows.map((r) => [
    r.id,
    r.vmName || '?',
    r.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    r.mode,
    r.jobId ?? '-',
    humanSize(r.size),
    r.mode === 'delta' ? String(r.chainLength) : '-',
    r.status,
  ]);
  const head = ['ID', 'VM', 'TIME', 'MODE', 'JOB', 'SIZE', 'CHAIN', 'STATUS'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const out = [line(head)];
  rows.forEach((r, i) => {
    const text = line(table[i]);
    out.push(r.status === 'ok' ? text : r.status === 'broken' ? red(text) : orange(text));
    for (const p of r.problems) if (r.status !== 'ok') out.push(dim(`    ${p}`));
  });
  return out.join('\n');
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
      const loaded = await loadConfigFile(o.config);
      if (!loaded.ok) {
        process.stderr.write(`${formatProblems(loaded.problems)}\n`);
        return 2;
      }
      const { rows, errors } = await listBackupRows(loaded.config, { remote: o.remote, vm: o.vm });
      if (o.json) printJson({ backups: rows, errors });
      else {
        process.stdout.write(`${formatBackupTable(rows)}\n`);
        for (const e of errors) process.stderr.write(`${red(`remote ${e.remoteId}: ${e.error}`)}\n`);
      }
      return errors.length > 0 ? 1 : 0;
    }),
  );
  registerBackupsDelete(backups);
};
