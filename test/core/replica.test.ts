// What makes a replica (core/replica.ts): names, tags, keys, completeness, leftovers, retention, CPU.
import { describe, expect, it } from 'vitest';
import {
  cpuMismatch,
  isCompleteReplica,
  isLeftoverReplica,
  isOrphanReplicaVdi,
  REPLICA_IMPORT_KEY,
  replicaImportTaskName,
  replicaImportTaskPrefix,
  replicaMarksRemoved,
  replicaName,
  replicaOtherConfig,
  replicasBeyondRetention,
  replicaTags,
} from '../../core/replica';

const owner = { vmUuid: 'vm-1', jobId: 'job', scheduleId: 's' };
const keys = { 'xo:backup:vm': 'vm-1', 'xo:backup:job': 'job', 'xo:backup:schedule': 's' };

describe('replicas', () => {
  it('are named and tagged as XO does, HA disabled said when cleared', () => {
    expect(replicaName('web', 'nightly', '20260115T020000Z')).toBe(
      'web - nightly - (2026-01-15 02:00:00 UTC)',
    );
    expect(replicaTags(['prod'], 'dr', false)).toEqual(['prod', 'Disaster Recovery']);
    expect(replicaTags(['prod', 'Continuous Replication'], 'cr', true)).toEqual([
      'prod',
      'Continuous Replication',
      'HA disabled',
    ]);
  });

  it("carry the owner's keys, never the source's backup bookkeeping, and no xo:backup:sr until complete", () => {
    const oc = replicaOtherConfig(
      { 'xo:backup:exported': 'true', 'xcpb:run': 'r', 'xo:copy_of': 'x', custom: 'kept' },
      { ...owner, datetime: '20260115T020000Z', copyOf: 'vm-1' },
    );
    expect(oc).toEqual({
      custom: 'kept',
      ...keys,
      'xo:backup:datetime': '20260115T020000Z',
      'xo:copy_of': 'vm-1',
      'xcpb:created-by': 'replica',
    });
    const vm = { uuid: 'r', isSnapshot: false, otherConfig: oc };
    expect(isLeftoverReplica(vm, owner)).toBe(true);
    expect(isCompleteReplica(vm, owner, 'sr')).toBe(false);
    const done = { ...vm, otherConfig: { ...oc, 'xo:backup:sr': 'sr' } };
    expect(isLeftoverReplica(done, owner)).toBe(false);
    expect(isCompleteReplica(done, owner, 'sr')).toBe(true);
    expect(isCompleteReplica(done, owner, 'other-sr')).toBe(false);
    // Another schedule's, and the source pool's job snapshots, are never leftovers.
    expect(isLeftoverReplica({ ...vm, otherConfig: { ...oc, 'xo:backup:schedule': 't' } }, owner)).toBe(
      false,
    );
    expect(isLeftoverReplica({ ...vm, isSnapshot: true }, owner)).toBe(false);
  });

  it('retention deletes all but the newest N, never the newest one', () => {
    const r = (uuid: string, datetime: string) => ({ uuid, datetime });
    const all = [r('b', '20260102T000000Z'), r('c', '20260103T000000Z'), r('a', '20260101T000000Z')];
    expect(replicasBeyondRetention(all, 2).map((x) => x.uuid)).toEqual(['a']);
    expect(replicasBeyondRetention(all, 0).map((x) => x.uuid)).toEqual(['b', 'a']);
    expect(replicasBeyondRetention(all, 5)).toEqual([]);
  });

  it('a CPU of another vendor or with other features is a warning for a RAM replica', () => {
    const intel = { vendor: 'GenuineIntel', modelname: 'Xeon', features: 'aa' };
    expect(cpuMismatch(intel, { ...intel })).toBeUndefined();
    expect(cpuMismatch(intel, { ...intel, features: 'ab' })).toMatch(/differs .* in features/);
    expect(cpuMismatch(intel, { vendor: 'AuthenticAMD', features: 'aa' })).toMatch(
      /AuthenticAMD.*GenuineIntel Xeon.*vendor/,
    );
  });

  it('a replica disk no VM uses and not marked importing is an orphan; a snapshot, a used or marked one is not', () => {
    const disk = { ...keys, 'xcpb:created-by': 'replica', 'xo:copy_of': 'src-vdi' };
    const vdi = { isSnapshot: false, otherConfig: disk, usedByVm: false };
    expect(isOrphanReplicaVdi(vdi, owner)).toBe(true);
    expect(isOrphanReplicaVdi({ ...vdi, isSnapshot: true }, owner)).toBe(false);
    expect(isOrphanReplicaVdi({ ...vdi, usedByVm: true }, owner)).toBe(false);
    expect(isOrphanReplicaVdi({ ...vdi, otherConfig: { ...disk, [REPLICA_IMPORT_KEY]: 'run' } }, owner)).toBe(
      false,
    );
    expect(isOrphanReplicaVdi(vdi, { ...owner, scheduleId: 'other' })).toBe(false);
    // A failover clone's disk loses the marks: a user's disk is never taken for an orphan.
    expect(isOrphanReplicaVdi({ ...vdi, otherConfig: replicaMarksRemoved(disk) }, owner)).toBe(false);
    expect(replicaMarksRemoved({ ...disk, 'other-key': 'kept' })).toEqual({ 'other-key': 'kept' });
  });

  it("an import's task name belongs to its run and owner", () => {
    const name = replicaImportTaskName(owner, 'xcpb:job:run-1', 'SR sr-1');
    expect(name.startsWith(replicaImportTaskPrefix(owner))).toBe(true);
    expect(name.startsWith(replicaImportTaskName(owner, 'xcpb:job:run-1', ''))).toBe(true);
    expect(name.startsWith(replicaImportTaskPrefix({ ...owner, scheduleId: undefined }))).toBe(false);
    expect(replicaImportTaskName(owner, 'xcpb:job:run-2', 'SR sr-1')).not.toBe(name);
  });
});
