// The id of one VM backup on one remote, stable and copy-pastable: `<remoteId>:<vmUuid>/<ts>`
// (e.g. `nas:0b6f…-…/20260115T020000Z`). Pure: no I/O.
import { parseBackupTimestamp } from './backup-time';

export interface BackupRef {
  remoteId: string;
  vmUuid: string;
  /** `<ts>`: the basename of the backup's files */
  basename: string;
}

const SEGMENT = /^[0-9A-Za-z][0-9A-Za-z._-]*$/;

export function formatBackupId(ref: BackupRef): string {
  return `${ref.remoteId}:${ref.vmUuid}/${ref.basename}`;
}

/** Parses a backup id; throws a RangeError saying what is wrong and what the form is. */
export function parseBackupId(id: string): BackupRef {
  const m = /^([^:/]+):([^:/]+)\/([^:/]+?)(\.json)?$/.exec(id.trim());
  const form = 'expected <remoteId>:<vmUuid>/<timestamp>, e.g. nas:3f2b…/20260115T020000Z';
  if (!m) throw new RangeError(`invalid backup id ${JSON.stringify(id)}: ${form}`);
  const [, remoteId, vmUuid, basename] = m as unknown as [string, string, string, string];
  for (const [what, value] of [
    ['remote id', remoteId],
    ['VM uuid', vmUuid],
  ] as const) {
    if (!SEGMENT.test(value) || value.includes('..'))
      throw new RangeError(`invalid backup id ${JSON.stringify(id)}: bad ${what} ${JSON.stringify(value)}`);
  }
  if (parseBackupTimestamp(basename) === undefined && !SEGMENT.test(basename)) {
    throw new RangeError(
      `invalid backup id ${JSON.stringify(id)}: bad timestamp ${JSON.stringify(basename)}`,
    );
  }
  return { remoteId, vmUuid, basename };
}
