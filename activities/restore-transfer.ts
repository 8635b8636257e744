// The data of a restore: a disk's whole VHD chain streamed as one synthetic dynamic VHD into
// `PUT /import_raw_vdi?format=vhd`, or an XVA streamed from the remote into `PUT /import`. Bytes are
// heartbeated (a dead worker is noticed, a cancellation stops the stream); nothing is held in memory
// beyond a block. Both are safe to retry: a disk import writes the same blocks again; an XVA import
// first looks for the VM an earlier attempt imported.
import { Transform } from 'node:stream';
import { Context } from '@temporalio/activity';
import { formatBackupId } from '../core/restore-backup-id';
import {
  RESTORE_DISK_KEY,
  RESTORE_KEY,
  restoredOtherConfig,
  restoredVmName,
  restoredVmTags,
} from '../core/restore-naming';
import { chainBlockSource, createVhdStream, vhdStreamLength } from '../formats/vhd';
import { backupMetadataSchema } from '../remotes/backup-metadata';
import { backupPaths } from '../remotes/backup-paths';
import { BackupRepository } from '../remotes/backup-repository';
import type { Remote } from '../remotes/remote';
import type { XapiClient } from '../xapi';
import { forgetImport, importOnce } from './import-once';
import type { RestoreActivities, RestoredVdi } from './restore-contract';
import { readAhead } from './restore-readahead';
import { mergeOtherConfig, type VmRecord, vmDisks } from './xapi-records';

/** Counts bytes through, reporting them at most every `everyMs`. */
function counter(onBytes: (n: number) => void, everyMs = 2_000): Transform & { bytes: number } {
  let last = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      t.bytes += chunk.length;
      const now = Date.now();
      if (now - last >= everyMs) {
        last = now;
        onBytes(t.bytes);
      }
      cb(null, chunk);
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  return t;
}

const heartbeatBytes = (what: string) => (bytes: number) => Context.current().heartbeat({ what, bytes });

export function createRestoreTransferActivities(
  client: (poolId: string) => Promise<XapiClient>,
  remote: (remoteId: string) => Remote,
): Pick<RestoreActivities, 'importRestoreDisk' | 'importRestoreXva'> {
  return {
    async importRestoreDisk({ poolId, backup, vhdPath, vdiUuid }) {
      const { cancellationSignal } = Context.current();
      const xapi = await client(poolId);
      const vdiRef = await xapi.call<string>('VDI.get_by_uuid', vdiUuid);
      const chain = await BackupRepository.readOnly(remote(backup.remoteId)).openChain(vhdPath);
      try {
        const size = vhdStreamLength(chain.size, chain.blocks());
        const count = counter(heartbeatBytes(`import into VDI ${vdiUuid}`));
        // Keyed by the VDI (created for this restore only): a retry after the import finished skips it.
        const done = await importOnce(xapi, `xcpb import_raw_vdi ${vdiUuid}`, (taskRef) => {
          const source = createVhdStream(readAhead(chainBlockSource(chain)), {
            uuid: chain.uuid,
            timestamp: chain.files[0].footer.timestamp,
          });
          source.on('error', (e) => count.destroy(e));
          source.pipe(count);
          return xapi.putResource('/import_raw_vdi', { vdi: vdiRef, format: 'vhd' }, count, {
            signal: cancellationSignal,
            size,
            taskRef,
          });
        });
        await forgetImport(xapi, done.taskRef);
        return { bytes: count.bytes };
      } finally {
        await chain.close();
      }
    },

    async importRestoreXva({ target, backup, xvaPath, restoreId, purpose }) {
      const { cancellationSignal } = Context.current();
      const xapi = await client(target.poolId);
      const from = remote(backup.remoteId);
      const meta = backupMetadataSchema.parse(
        JSON.parse((await from.readFile(backupPaths(backup.vmUuid, backup.basename).metadata)).toString()),
      );
      const source = meta.vm as Record<string, unknown>;
      let vmRef = Object.entries(await xapi.getAllRecords<VmRecord>('VM')).find(
        ([, vm]) => vm.other_config?.[RESTORE_KEY] === restoreId && !vm.is_a_snapshot,
      )?.[0];
      let bytes = 0;
      if (!vmRef) {
        const srRef = await xapi.call<string>('SR.get_by_uuid', target.srUuid);
        const size = (await from.stat(xvaPath)).size;
        const count = counter(heartbeatBytes(`XVA import into SR ${target.srName}`));
        // A retried attempt whose predecessor imported and died before marking the VM finds that
        // import's task (named after the restore) and its VM, instead of importing a second VM.
        const done = await importOnce(xapi, `xcpb import ${restoreId}`, async (taskRef) => {
          const stream = await from.createReadStream(xvaPath);
          stream.on('error', (e) => count.destroy(e));
          stream.pipe(count);
          return xapi.putResource('/import', { sr_id: srRef }, count, {
            signal: cancellationSignal,
            size,
            taskRef,
          });
        });
        bytes = count.bytes;
        vmRef = String(Array.isArray(done.value) ? done.value[0] : done.value);
        // Marked at once: from here on a cleanup finds it, and the task is no longer needed.
        await mergeOtherConfig(
          xapi,
          'VM',
          vmRef,
          restoredOtherConfig({}, { restoreId, backupId: formatBackupId(backup), purpose }),
        );
        await forgetImport(xapi, done.taskRef);
      }
      const vm = await xapi.getRecord<VmRecord>('VM', vmRef);
      const cleaned = restoredOtherConfig(vm.other_config, {
        restoreId,
        backupId: formatBackupId(backup),
        purpose,
      });
      await xapi.call('VM.set_other_config', vmRef, cleaned);
      await xapi.call(
        'VM.set_name_label',
        vmRef,
        restoredVmName(String(source.name_label ?? backup.vmUuid), backup.basename, purpose),
      );
      await xapi.call(
        'VM.set_tags',
        vmRef,
        restoredVmTags(Array.isArray(source.tags) ? source.tags.map(String) : [], purpose),
      );
      const vdis: RestoredVdi[] = [];
      for (const d of await vmDisks(xapi, vm)) {
        await mergeOtherConfig(xapi, 'VDI', d.vdiRef, {
          [RESTORE_KEY]: restoreId,
          [RESTORE_DISK_KEY]: d.vdi.uuid,
        });
        vdis.push({
          key: d.vdi.uuid,
          uuid: d.vdi.uuid,
          nameLabel: d.vdi.name_label,
          virtualSize: Number(d.vdi.virtual_size),
          suspend: false,
        });
      }
      const final = await xapi.getRecord<VmRecord>('VM', vmRef);
      return {
        vmUuid: final.uuid,
        vmName: final.name_label,
        powerState: final.power_state,
        vdis,
        networks: [],
        bytes,
      };
    },
  };
}
