// Export activities: stream a disk (VHD) or a whole VM (XVA) from XAPI straight to every target
// remote, heartbeating the bytes so a dead worker is noticed and a cancellation stops the stream.
import { Context } from '@temporalio/activity';
import { parseBackupTimestamp } from '../core/backup-time';
import { reidentifyVhdStream } from '../formats/vhd/reidentify';
import { backupPaths } from '../remotes/backup-paths';
import type { Remote } from '../remotes/remote';
import { openVhdWrite } from '../remotes/vhd-directory';
import type { BackupActivities, ImportOutcome, ImportTarget, TransferResult } from './contract';
import { withXapiFailures } from './failures';
import { DEFAULT_STALL_MS, type FanOutResult, remoteSink, writeToSinks } from './fan-out';
import { type ImportSink, importSink } from './import-sink';
import type { PoolRegistry } from './pools';
import { removeReplicaLeftovers } from './sr-writer-activities';
import { xvaExportTotal } from './xva-size';

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
  // known for a VHD once its header is read, bounded for an XVA (activities/xva-size.ts): for ETAs
  let total: number | undefined;
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

/** The SR side of an export: a DR target imports the XVA, a CR target takes a disk's VHD. */
function importSinks(pools: PoolRegistry, imports: readonly ImportTarget[] = []): ImportSink[] {
  return imports.map((t) => {
    const xapi = () => pools.client(t.poolId);
    if (t.vdiUuid) {
      const vdiUuid = t.vdiUuid;
      return importSink(
        t.id,
        xapi,
        '/import_raw_vdi',
        async (x) => ({ vdi: await x.call<string>('VDI.get_by_uuid', vdiUuid), format: 'vhd' }),
        t.taskName,
      );
    }
    return importSink(
      t.id,
      xapi,
      '/import',
      async (x) => {
        // What an earlier attempt or run left is destroyed before the new import starts (§6.1).
        if (t.owner) await removeReplicaLeftovers(x, t.owner);
        return { sr_id: await x.call<string>('SR.get_by_uuid', t.srUuid) };
      },
      t.taskName,
    );
  });
}

/** Splits the fan-out's outcomes into the remotes' and the imports'. */
async function splitOutcomes(
  pools: PoolRegistry,
  result: FanOutResult,
  sinks: readonly ImportSink[],
  imports: readonly ImportTarget[] = [],
): Promise<{ targets: FanOutResult['targets']; imports: ImportOutcome[] }> {
  const ids = new Set(sinks.map((s) => s.id));
  const out: ImportOutcome[] = [];
  for (const t of result.targets.filter((x) => ids.has(x.remoteId))) {
    const sink = sinks.find((s) => s.id === t.remoteId)!;
    const target = imports.find((i) => i.id === t.remoteId)!;
    const ref = sink.result();
    const vmUuid =
      t.ok && !target.vdiUuid && ref
        ? await (await pools.client(target.poolId)).call<string>('VM.get_uuid', ref)
        : undefined;
    // XAPI's reason first (SR_FULL…): the stream may have ended before the import's answer came.
    const failure = t.ok ? undefined : await sink.failure();
    out.push({ id: t.remoteId, ok: t.ok, error: failure?.message ?? t.error, code: failure?.code, vmUuid });
  }
  return { targets: result.targets.filter((x) => !ids.has(x.remoteId)), imports: out };
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
          const path = paths.vhd(req.jobId, req.chainVdiUuid);
          const sinks = importSinks(pools, req.imports);
          const result = await writeToSinks(
            vhd.stream,
            [...req.remoteIds.map((id) => remoteSink(remotes(id), path, openVhdWrite)), ...sinks],
            progress,
            cancellationSignal,
            stallMs,
          );
          return {
            bytes: result.bytes,
            ...(await splitOutcomes(pools, result, sinks, req.imports)),
            path: paths.metadataVhdRef(req.jobId, req.chainVdiUuid),
            differencing: parent !== undefined,
          };
        }),
      ),

    exportVm: (req) =>
      withXapiFailures(`XVA export of VM ${req.vmUuid}`, () =>
        heartbeating(async (progress, expect): Promise<TransferResult> => {
          const { cancellationSignal } = Context.current();
          const xapi = await pools.client(req.poolId);
          const ref = await xapi.call<string>('VM.get_by_uuid', req.snapshotUuid);
          // The XVA has no length: the progress total is a bound read alongside, delaying nothing;
          // without it the bar shows bytes and rate only.
          xvaExportTotal(xapi, ref).then(expect, () => {});
          const paths = backupPaths(req.vmUuid, req.datetime);
          const { body } = await xapi.getResource(
            '/export',
            { ref, use_compression: XVA_COMPRESSION[req.compression] },
            { signal: cancellationSignal },
          );
          const sinks = importSinks(pools, req.imports);
          const result = await writeToSinks(
            body,
            [...req.remoteIds.map((id) => remoteSink(remotes(id), paths.xva)), ...sinks],
            progress,
            cancellationSignal,
            stallMs,
          );
          return {
            bytes: result.bytes,
            ...(await splitOutcomes(pools, result, sinks, req.imports)),
            path: paths.metadataXvaRef,
            differencing: false,
          };
        }),
      ),
  };
}
