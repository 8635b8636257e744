// The restoreFiles activity: opens one filesystem of a delta backup and writes the asked paths as a
// .tar.gz / .zip on a remote (atomic: complete or absent) or into a folder, heartbeating the bytes
// written. A damaged or unreadable filesystem, a missing path, a bad output: non-retryable.
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { parseBackupId } from '../core/restore-backup-id';
import { archiveFormatOf, writeArchive } from '../formats/archive/file-archive';
import { FsError } from '../formats/disk/filesystem';
import { FileRestoreError, openBackupFiles } from '../remotes/backup-files';
import { isRemoteError, type Remote } from '../remotes/remote';
import { permanent } from './failures';
import type { FileRestoreActivities, RestoreFilesInput, RestoreFilesResult } from './file-restore-contract';

function heartbeat(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // called outside an activity
  }
}

export function createFileRestoreActivities(remotes: (remoteId: string) => Remote): FileRestoreActivities {
  return {
    async restoreFiles(input: RestoreFilesInput): Promise<RestoreFilesResult> {
      let ref: ReturnType<typeof parseBackupId>;
      try {
        ref = parseBackupId(input.backupId);
      } catch (e) {
        throw permanent((e as Error).message);
      }
      if (input.paths.length === 0) throw permanent('restoreFiles: no paths to restore');
      const out = input.output;
      const format = 'folder' in out ? 'folder' : archiveFormatOf(out.path);
      if ('folder' in out && !path.isAbsolute(out.folder)) {
        throw permanent(
          `restoreFiles: the output folder must be an absolute path, got ${JSON.stringify(out.folder)}`,
        );
      }
      if (!('folder' in out) && format === 'folder') {
        throw permanent(
          `restoreFiles: an archive on a remote must end in .tar.gz, .tgz or .zip, got ${JSON.stringify(out.path)}`,
        );
      }
      let opened: Awaited<ReturnType<typeof openBackupFiles>>;
      try {
        opened = await openBackupFiles(remotes(ref.remoteId), ref, {
          disk: input.disk,
          partition: input.partition,
        });
      } catch (e) {
        if (
          e instanceof FileRestoreError ||
          e instanceof FsError ||
          e instanceof RangeError ||
          isRemoteError(e, 'ENOENT')
        ) {
          throw permanent(`backup ${input.backupId}: ${(e as Error).message}`, 'FILE_RESTORE');
        }
        throw e;
      }
      const progress = (p: { bytes: number; files: number }) => heartbeat(p);
      heartbeat({ bytes: 0, files: 0 });
      const timer = setInterval(() => heartbeat(undefined), 10_000);
      try {
        let summary: Awaited<ReturnType<typeof writeArchive>>;
        if ('folder' in out) {
          summary = await writeArchive(opened.fs, input.paths, 'folder', out.folder, progress);
        } else {
          const write = await remotes(out.remoteId).createWriteStreamAtomic(out.path);
          try {
            summary = await writeArchive(
              opened.fs,
              input.paths,
              format as 'tar.gz' | 'zip',
              write.stream,
              progress,
            );
            await write.commit();
          } catch (e) {
            await write.abort();
            throw e;
          }
        }
        return { backupId: input.backupId, source: opened.where, output: out, format, ...summary };
      } catch (e) {
        if (e instanceof FsError) throw permanent(`backup ${input.backupId}: ${e.message}`, 'FILE_RESTORE');
        throw e;
      } finally {
        clearInterval(timer);
        await opened.close();
      }
    },
  };
}
