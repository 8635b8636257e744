// Export activities: stream a disk (VHD) or a whole VM (XVA) from XAPI straight to every target
// remote, heartbeating the bytes so a dead worker is noticed and a cancellation stops the stream.
import { Context } from '@temporalio/activity';
import { parseBackupTimestamp } from '../core/backup-time';
import { reidentifyVhdStream } from '../formats/vhd/reidentify';
import { backupPaths } from '../remotes/backup-paths';
import type { Remote } from '../remotes/remote';
import { openVhdWrite } from '../remotes/vhd-directory';
import type { BackupActivities, TransferResult } from './contract';
import { withXapiFailures } from './failures';
import { DEFAULT_STALL_MS, writeToRemotes } from './fan-out';
import type { PoolRegistry } from './pools';

export type RemoteRegistry = (remoteId: string) => Remote;

/**
 * Runs `fn` heartbeating every `everyMs` with the bytes so far (visible in the Web UI), whether
 * bytes move or not: a stalled export still proves the worker alive, and learns of a cancellation
 * through the heartbeat's answer.
 */
async function heartbeating<T>(
  fn: (progress: (bytes: number) => void, expect: (total: number) => void) => Promise<T>,
  everyMs = 2_000,
): Promise<T> {
  const ctx = Context.current();
  let bytes = 0;
  let total: number | undefined; // known for a VHD once its header is read: for ETAs
  const timer = setInterval(() => ctx.heartbeat({ bytes, total }), everyMs);
  try {
    return await fn(
      (b) => {
        bytes = b;
      },
      (t) => {
        total = t;
      },
    );
  } finally {
    clearInterval(timer);
  }
}

const XVA_COMPRESSION: Record<string, string> = { none: 'false', gzip: 'true', zstd: 'zstd' };

export function createTransferActivities(
  pools: PoolRegistry,
  remotes: RemoteRegistry,
  /** A target taking no data for this long is dropped (activities/fan-out). */
  stallMs = DEFAULT_STALL_MS,
): Pick<BackupActivities, 'exportDisk' | 'exportVm'> {
  return {
    exportDisk: (req) =>
      withXapiFailures(`export of VDI ${req.snapshotVdiUuid} of VM ${req.vmUuid}`, () =>
        heartbeating(async (progress, expect): Promise<TransferResult> => {
          const { cancellationSignal } = Context.current();
          const xapi = await pools.client(req.poolId);
          const vdiRef = await xapi.call<string>('VDI.get_by_uuid', req.snapshotVdiUuid);
          const baseRef = req.baseVdiUuid
            ? await xapi.call<string>('VDI.get_by_uuid', req.baseVdiUuid)
            : undefined;
          const paths = backupPaths(req.vmUuid, req.datetime);
          const query: Record<string, string> = {
            vdi: vdiRef,
            format: 'vhd',
            ...(baseRef ? { base: baseRef } : {}),
          };
          const { body } = await xapi.getResource('/export_raw_vdi', query, { signal: cancellationSignal });
          const parent =
            req.baseVdiUuid && req.baseDatetime
              ? {
                  uuid: req.baseVdiUuid,
                  name: `${req.baseDatetime}.vhd`,
                  timestamp: new Date(parseBackupTimestamp(req.baseDatetime) ?? 0),
                }
              : undefined;
          const vhd = await reidentifyVhdStream(
            body,
            { uuid: req.snapshotVdiUuid, parent },
            `export of VDI ${req.snapshotVdiUuid}`,
          );
          expect(vhd.size);
          const result = await writeToRemotes(
            vhd.stream,
            req.remoteIds.map(remotes),
            paths.vhd(req.jobId, req.chainVdiUuid),
            progress,
            cancellationSignal,
            stallMs,
            openVhdWrite,
          );
          return {
            ...result,
            path: paths.metadataVhdRef(req.jobId, req.chainVdiUuid),
            differencing: parent !== undefined,
          };
        }),
      ),

    exportVm: (req) =>
      withXapiFailures(`XVA export of VM ${req.vmUuid}`, () =>
        heartbeating(async (progress): Promise<TransferResult> => {
          const { cancellationSignal } = Context.current();
          const xapi = await pools.client(req.poolId);
          const ref = await xapi.call<string>('VM.get_by_uuid', req.snapshotUuid);
          const paths = backupPaths(req.vmUuid, req.datetime);
          const { body } = await xapi.getResource(
            '/export',
            { ref, use_compression: XVA_COMPRESSION[req.compression] },
            { signal: cancellationSignal },
          );
          const result = await writeToRemotes(
            body,
            req.remoteIds.map(remotes),
            paths.xva,
            progress,
            cancellationSignal,
            stallMs,
          );
          return { ...result, path: paths.metadataXvaRef, differencing: false };
        }),
      ),
  };
}
