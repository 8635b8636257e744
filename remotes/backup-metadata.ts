// The `<ts>.json` metadata of a VM backup, field for field as Xen Orchestra writes it (xo-backups.md
// §4.2; key names checked against IncrementalRemoteWriter / FullRemoteWriter). Two schemas:
// - `backupMetadataSchema` reads what is on a remote (ours or XO's, old or new): lenient, and it keeps
//   every field it does not know so a rewrite (after a merge) loses nothing;
// - `newBackupMetadataSchema` is what we write: every field XO's own writer sets.
import { z } from 'zod';

/** A XAPI record as xen-api serialises it: all fields kept; only the ones we use are typed. */
const xapiRecord = z.looseObject({});
const vmRecord = z.looseObject({ uuid: z.string() });
const recordsByRef = z.record(z.string(), xapiRecord);

const common = {
  version: z.string().optional(), // '2.0.0' for everything XO writes today
  jobId: z.string(),
  scheduleId: z.string().optional(), // absent in some very old or hand-made files
  timestamp: z.number(), // epoch ms, taken after the snapshot
  vm: vmRecord, // the live VM record
  vmSnapshot: xapiRecord.optional(), // the exported snapshot's record
  size: z.number().optional(), // bytes written; after a merge, the merged size
  tags: z.array(z.string()).optional(), // long-term retention buckets held: "daily=2026-01-15"
};

export const fullBackupMetadataSchema = z.looseObject({
  ...common,
  mode: z.literal('full'),
  xva: z.string(), // "./<ts>.xva", relative to the VM folder
});

export const deltaBackupMetadataSchema = z.looseObject({
  ...common,
  mode: z.literal('delta'),
  vbds: recordsByRef.optional(), // { <vbdRef>: VBD record } (Disk VBDs with a VDI)
  vdis: recordsByRef, // { <snapshotVdiRef>: VDI record + other_config['xo:base_delta_vdi'], $snapshot_of$uuid… }
  vifs: recordsByRef.optional(), // { <vifRef>: VIF record + $network$uuid, $network$name_label, $network$VLAN }
  vtpms: z.array(z.unknown()).optional(), // VTPM.get_contents results
  vhds: z.record(z.string(), z.string()), // { <snapshotVdiRef>: "vdis/<jobId>/<srcVdiUuid>/<ts>.vhd" }
  // Keyed `<snapshotVdiRef>.vhd` (XO's code reads isVhdDifferencing[`${ref}.vhd`]); false for a key disk.
  isVhdDifferencing: z.record(z.string(), z.boolean()).optional(),
  includeNonNbdQcow2Fix: z.boolean().optional(),
});

export const backupMetadataSchema = z.discriminatedUnion('mode', [
  fullBackupMetadataSchema,
  deltaBackupMetadataSchema,
]);

export type FullBackupMetadata = z.infer<typeof fullBackupMetadataSchema>;
export type DeltaBackupMetadata = z.infer<typeof deltaBackupMetadataSchema>;
export type BackupMetadata = z.infer<typeof backupMetadataSchema>;

const newCommon = {
  version: z.literal('2.0.0'),
  scheduleId: z.string().min(1),
  jobId: z.string().min(1),
  size: z.number().int().nonnegative(),
};

export const newBackupMetadataSchema = z.discriminatedUnion('mode', [
  fullBackupMetadataSchema.extend({ ...newCommon, vmSnapshot: xapiRecord.optional() }),
  deltaBackupMetadataSchema.extend({
    ...newCommon,
    vbds: recordsByRef,
    vifs: recordsByRef,
    vmSnapshot: xapiRecord,
    isVhdDifferencing: z.record(z.string(), z.boolean()),
  }),
]);

/** The `isVhdDifferencing` key XO uses for the disk whose `vhds` key is `vdiRef`. */
export const differencingKey = (vdiRef: string): string => `${vdiRef}.vhd`;

/** Whether a delta backup's disk is differencing, reading both XO's key and a bare-ref key. */
export function isDiskDifferencing(meta: DeltaBackupMetadata, vdiRef: string): boolean {
  return meta.isVhdDifferencing?.[differencingKey(vdiRef)] ?? meta.isVhdDifferencing?.[vdiRef] ?? false;
}

/** Human-readable summary of a zod failure: `vhds.OpaqueRef:1: expected string`. */
export function describeSchemaError(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
    .join('; ');
}
