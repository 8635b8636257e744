// `xcpb files ls <backupId> --config <file> [--disk N] [--partition P] [path] [--offset N] [--limit N] [--json]`
// `xcpb files get <backupId> <path>... -o <out.tar.gz|out.zip|folder> --config <file> [--disk N] [--partition P] [--json]`
// File-level restore from a delta backup, read straight from its VHD chain (nothing is written but
// the output). Without a path, `ls` shows the disks, partitions and volumes with their filesystems.
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { BackupRef } from '../core/restore-backup-id';
import { formatBytes } from '../core/words';
import { archiveFormatOf, measure, writeArchive } from '../formats/archive/file-archive';
import type { FsEntry } from '../formats/disk/filesystem';
import { describeBackupDisks, openBackupFiles } from '../remotes/backup-files';
import { openRemote } from '../remotes/open-remote';
import type { Remote } from '../remotes/remote';
import { backupIdArg, configArg, remoteArg } from './inputs';
import { dim, printJson, red, UsageError } from './output';

export const FILES_USAGE = [
  'usage: xcpb files ls <backupId> --config <file> [--disk N] [--partition P|vg/lv] [path] [--offset N] [--limit N] [--json]',
  '       xcpb files get <backupId> <path>... -o <out.tar.gz|out.zip|folder> --config <file> [--disk N] [--partition P|vg/lv] [--json]',
].join('\n');

const options = {
  config: { type: 'string' },
  disk: { type: 'string' },
  partition: { type: 'string' },
  offset: { type: 'string' },
  limit: { type: 'string' },
  output: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
} as const;

function count(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value))
    throw new UsageError(`--${flag} must be a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

async function remoteFor(
  configPath: string | undefined,
  id: string,
): Promise<{ remote: Remote; ref: BackupRef }> {
  if (!configPath) throw new UsageError(FILES_USAGE);
  const ref = backupIdArg(id);
  const rc = remoteArg(await configArg(configPath), ref.remoteId);
  return { remote: openRemote({ id: rc.id, url: rc.url }), ref };
}

function modeString(e: FsEntry): string {
  const t = e.type === 'directory' ? 'd' : e.type === 'symlink' ? 'l' : e.type === 'file' ? '-' : '?';
  if (e.mode === undefined) return `${t}?????????`;
  const rwx = 'rwxrwxrwx';
  return t + [...rwx].map((c, i) => (e.mode! & (0o400 >> i) ? c : '-')).join('');
}

export async function filesCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'ls' && sub !== 'get') throw new UsageError(FILES_USAGE);
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options });
  const [id, ...paths] = positionals;
  if (!id) throw new UsageError(FILES_USAGE);
  const sel = { disk: count(values.disk, 'disk'), partition: values.partition };
  const { remote, ref } = await remoteFor(values.config, id);

  if (sub === 'ls' && paths.length === 0 && sel.disk === undefined && sel.partition === undefined) {
    const disks = await describeBackupDisks(remote, ref);
    if (values.json) printJson({ disks });
    else {
      for (const d of disks) {
        process.stdout.write(
          `disk ${d.index}  ${d.name}  ${formatBytes(d.size)}${d.scheme ? `  ${d.scheme}` : ''}\n`,
        );
        if (d.problem) process.stdout.write(`  ${red(d.problem)}\n`);
        for (const v of d.volumes) {
          const what = v.fsType ?? '';
          const name = v.id === '' ? '(whole disk)' : v.id;
          const problem = v.problem ? red(`  ${v.problem}`) : '';
          process.stdout.write(
            `  ${name.padEnd(14)} ${formatBytes(v.size).padStart(10)}  ${what.padEnd(7)} ${v.kind}${v.label ? `  "${v.label}"` : ''}${problem}\n`,
          );
        }
      }
    }
    return disks.some((d) => d.problem) ? 1 : 0;
  }

  if (sub === 'ls' && paths.length > 1) throw new UsageError(FILES_USAGE);
  if (sub === 'get' && (paths.length === 0 || !values.output)) throw new UsageError(FILES_USAGE);
  const opened = await openBackupFiles(remote, ref, sel);
  try {
    if (sub === 'ls') {
      const path = paths[0] ?? '/';
      const page = await opened.fs.list(path, {
        offset: count(values.offset, 'offset'),
        limit: count(values.limit, 'limit'),
      });
      if (values.json) printJson({ where: opened.where, path, ...page });
      else {
        for (const e of page.entries) {
          const owner = e.uid === undefined ? '' : `${e.uid}:${e.gid ?? 0}`;
          const link = e.type === 'symlink' ? ` -> ${e.target}` : '';
          const suffix = e.type === 'directory' ? '/' : '';
          process.stdout.write(
            `${modeString(e)} ${owner.padStart(11)} ${String(e.size).padStart(14)} ${e.mtime?.replace(/\.000Z$/, 'Z') ?? '-'.padEnd(20)}  ${e.name}${suffix}${link}\n`,
          );
        }
        const shown = (count(values.offset, 'offset') ?? 0) + page.entries.length;
        if (shown < page.total)
          process.stderr.write(dim(`${shown} of ${page.total} entries: --offset ${shown} for more\n`));
      }
      return 0;
    }

    const out = values.output!;
    const format = archiveFormatOf(out);
    const total = await measure(opened.fs, paths);
    let last = 0;
    const progress = (p: { bytes: number; files: number }) => {
      const now = Date.now();
      if (values.json || now - last < 500) return;
      last = now;
      const pct = total.bytes ? ` ${((100 * p.bytes) / total.bytes).toFixed(0)}%` : '';
      process.stderr.write(
        dim(
          `${formatBytes(p.bytes)} of ${formatBytes(total.bytes)}${pct}, ${p.files}/${total.files} files\n`,
        ),
      );
    };
    let summary: Awaited<ReturnType<typeof writeArchive>>;
    if (format === 'folder') summary = await writeArchive(opened.fs, paths, 'folder', out, progress);
    else {
      // Written under a temporary name: a failed restore leaves no half archive behind.
      const tmp = `${out}.partial`;
      try {
        summary = await writeArchive(
          opened.fs,
          paths,
          format,
          createWriteStream(tmp, { flags: 'wx' }),
          progress,
        );
        await rename(tmp, out);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
    }
    if (values.json) printJson({ where: opened.where, output: out, format, ...summary });
    else {
      process.stdout.write(
        `${out}: ${summary.files} files, ${summary.folders} folders, ${summary.symlinks} symlinks, ${formatBytes(summary.bytes)} from ${opened.where}\n`,
      );
      if (summary.skipped) process.stdout.write(dim(`${summary.skipped} special files skipped\n`));
    }
    return 0;
  } finally {
    await opened.close();
  }
}
