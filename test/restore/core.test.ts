// The pure parts of restore: backup ids, names and marks, the health-check time budget, the records
// a delta restore creates.
import { describe, expect, it } from 'vitest';
import { formatBackupId, parseBackupId } from '../../core/restore-backup-id';
import {
  HEALTH_CHECK_BASE_MS,
  healthCheckApplies,
  healthCheckTimeoutMs,
} from '../../core/restore-health-timeout';
import { restoredOtherConfig, restoredVmName, restoredVmTags } from '../../core/restore-naming';
import { chooseNetwork, plannedVbds, vmCreateRecord } from '../../core/restore-records';

describe('backup ids', () => {
  it('round-trip and accept the .json form', () => {
    const ref = {
      remoteId: 'nas',
      vmUuid: '3f2b0c1e-0000-4000-8000-000000000001',
      basename: '20260115T020000Z',
    };
    expect(formatBackupId(ref)).toBe('nas:3f2b0c1e-0000-4000-8000-000000000001/20260115T020000Z');
    expect(parseBackupId(formatBackupId(ref))).toEqual(ref);
    expect(parseBackupId(`${formatBackupId(ref)}.json`)).toEqual(ref);
  });
  it.each(['', 'nas', 'nas:vm', 'nas:../x/20260115T020000Z', ':vm/20260115T020000Z', 'a:b:c/d'])(
    'refuse %j, saying the expected form',
    (id) => {
      expect(() => parseBackupId(id)).toThrow(/invalid backup id/);
    },
  );
});

describe('names and marks', () => {
  it('say restored or health check, and when the backup was taken', () => {
    expect(restoredVmName('web', '20260115T020000Z')).toBe('web (restored 2026-01-15 02:00:00 UTC)');
    expect(restoredVmName('web', '20260115T020000Z', 'health-check')).toBe(
      'web (health check 2026-01-15 02:00:00 UTC)',
    );
  });
  it('a health-check VM is tagged xo:no-bak; other_config loses backup keys and gets ours', () => {
    expect(restoredVmTags(['prod'], 'health-check')).toEqual(['prod', 'xcpb health check', 'xo:no-bak']);
    expect(restoredVmTags(['prod'], 'restore')).toEqual(['prod', 'restored from backup']);
    expect(
      restoredOtherConfig(
        { 'xo:backup:job': 'j', 'xcpb:run': 'r', mac_seed: 's', base_template_name: 'Debian' },
        { restoreId: 'w', backupId: 'nas:v/t', purpose: 'restore' },
      ),
    ).toEqual({
      base_template_name: 'Debian',
      'xcpb:created-by': 'restore',
      'xcpb:restore': 'w',
      'xcpb:restored-from': 'nas:v/t',
    });
  });
});

describe('health-check timeout', () => {
  it('is the configured one when given', () => {
    expect(healthCheckTimeoutMs(1e12, '90s')).toBe(90_000);
    expect(() => healthCheckTimeoutMs(0, 'soon')).toThrow(/not a duration/);
  });
  it('grows with the bytes restored (10 min for nothing, more for 100 GiB)', () => {
    expect(healthCheckTimeoutMs(0)).toBe(HEALTH_CHECK_BASE_MS);
    const big = healthCheckTimeoutMs(100 * 1024 ** 3);
    expect(big).toBeGreaterThan(HEALTH_CHECK_BASE_MS + 60 * 60_000);
    expect(healthCheckTimeoutMs(200 * 1024 ** 3)).toBeGreaterThan(big);
  });
  it('applies to every VM without tags, else to VMs with one of them', () => {
    expect(healthCheckApplies(['a'])).toBe(true);
    expect(healthCheckApplies(['a'], ['b', 'a'])).toBe(true);
    expect(healthCheckApplies(['a'], ['b'])).toBe(false);
  });
});

describe('records', () => {
  it('VM.create: the machine fields, a new name, Halted, or Suspended on its memory VDI', () => {
    const source = {
      name_label: 'web',
      VCPUs_max: '4',
      memory_static_max: '1073741824',
      power_state: 'Running',
      affinity: 'OpaqueRef:h',
    };
    const halted = vmCreateRecord(source, { name: 'n', tags: [], otherConfig: {} });
    expect(halted).toMatchObject({
      name_label: 'n',
      VCPUs_max: '4',
      power_state: 'Halted',
      affinity: 'OpaqueRef:NULL',
      suspend_VDI: 'OpaqueRef:NULL',
    });
    expect(halted.memory_static_min).toBe(134217728); // default for a field the metadata lacks
    expect(
      vmCreateRecord(source, { name: 'n', tags: [], otherConfig: {}, suspendVdiRef: 'OpaqueRef:m' }),
    ).toMatchObject({
      power_state: 'Suspended',
      suspend_VDI: 'OpaqueRef:m',
    });
  });
  it('VBDs follow the metadata, and disks it does not cover get free device numbers', () => {
    const vbds = {
      a: { VDI: 'k1', userdevice: '1', bootable: false, type: 'Disk' },
      b: { VDI: 'cd', type: 'CD', userdevice: '3' },
    };
    expect(plannedVbds(vbds, ['k1', 'k2'])).toEqual([
      { vdiKey: 'k2', userdevice: '0', bootable: false, mode: 'RW' },
      { vdiKey: 'k1', userdevice: '1', bootable: false, mode: 'RW' },
    ]);
    expect(plannedVbds(undefined, ['x'])).toEqual([
      { vdiKey: 'x', userdevice: '0', bootable: true, mode: 'RW' },
    ]);
  });
  it('networks: same uuid, else same name, else the first', () => {
    const nets = [
      { ref: 'r1', uuid: 'u1', name_label: 'LAN' },
      { ref: 'r2', uuid: 'u2', name_label: 'DMZ' },
    ];
    expect(chooseNetwork({ $network$uuid: 'u2' }, nets)?.network.ref).toBe('r2');
    expect(chooseNetwork({ $network$uuid: 'x', $network$name_label: 'DMZ' }, nets)?.why).toMatch(
      /named "DMZ"/,
    );
    expect(chooseNetwork({ $network$uuid: 'x', $network$name_label: 'Other' }, nets)?.network.ref).toBe('r1');
    expect(chooseNetwork({}, [])).toBeUndefined();
  });
});
