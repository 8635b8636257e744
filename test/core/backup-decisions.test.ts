// The pure decisions of a backup run, on plain inputs.
import { describe, expect, it } from 'vitest';
import { chooseBaseSnapshot, type JobSnapshot, planDisks } from '../../core/delta-base';
import { runOutcome, vmOutcome } from '../../core/run-report';
import { effectiveSnapshotMode } from '../../core/snapshot-mode';
import { decideSnapshotRetention } from '../../core/snapshot-retention';
import { missingExplicitVms, selectVms, type VmCandidate } from '../../core/vm-selection';

const vm = (uuid: string, o: Partial<VmCandidate> = {}): VmCandidate => ({
  uuid,
  name: uuid,
  poolId: 'p1',
  powerState: 'Running',
  tags: [],
  isTemplate: false,
  isSnapshot: false,
  isControlDomain: false,
  otherConfig: {},
  ...o,
});

describe('smart selection', () => {
  const candidates = [
    vm('web', { tags: ['prod'] }),
    vm('db', { tags: ['prod', 'no-backup'] }),
    vm('halted', { tags: ['prod'], powerState: 'Halted' }),
    vm('other-pool', { tags: ['prod'], poolId: 'p2' }),
    vm('secret', { tags: ['prod', 'xo:no-bak'] }),
    vm('replica', { tags: ['prod'], otherConfig: { 'xcpb:created-by': 'replication' } }),
    vm('tpl', { tags: ['prod'], isTemplate: true }),
    vm('snap', { tags: ['prod'], isSnapshot: true }),
    vm('dom0', { isControlDomain: true }),
  ];

  it('takes pools, any of the tags, minus excluded tags, with the power state; says why others are left', () => {
    const r = selectVms(
      { pools: ['p1'], tags: ['prod'], excludeTags: ['no-backup'], powerState: 'running' },
      candidates,
    );
    expect(r.selected.map((v) => v.uuid)).toEqual(['web']);
    const why = Object.fromEntries(r.excluded.map((e) => [e.uuid, e.reason]));
    expect(why).toEqual({
      db: 'tagged no-backup (excluded)',
      halted: 'power state Halted, job wants running',
      'other-pool': 'pool p2 not selected',
      secret: 'tagged xo:no-bak',
      replica: 'created by xcp-backup (replication)',
    });
  });

  it('an explicit list takes exactly those VMs, still never xo:no-bak, and names the missing ones', () => {
    const r = selectVms({ uuids: ['halted', 'secret', 'ghost'], powerState: 'any' }, candidates);
    expect(r.selected.map((v) => v.uuid)).toEqual(['halted']);
    expect(missingExplicitVms({ uuids: ['halted', 'ghost'], powerState: 'any' }, candidates)).toEqual([
      'ghost',
    ]);
  });

  it('never selects templates, snapshots or the control domain', () => {
    const r = selectVms({ powerState: 'any' }, candidates);
    expect(r.selected.map((v) => v.uuid)).not.toEqual(expect.arrayContaining(['tpl']));
    expect([...r.selected, ...r.excluded].map((v) => v.uuid)).not.toContain('dom0');
  });
});

describe('snapshot mode', () => {
  it('VM tags override the job setting, offline first', () => {
    expect(effectiveSnapshotMode('normal', [])).toEqual({ mode: 'normal', why: 'job setting' });
    expect(effectiveSnapshotMode('normal', ['xo-memory-backup']).mode).toBe('memory');
    expect(effectiveSnapshotMode('memory', ['xo-offline-backup', 'xo-memory-backup']).mode).toBe('offline');
  });
});

const snap = (uuid: string, datetime: string, o: Partial<JobSnapshot> = {}): JobSnapshot => ({
  uuid,
  datetime,
  exported: true,
  deltaChainLength: 0,
  vdis: { live1: `${uuid}-vdi1`, live2: `${uuid}-vdi2` },
  ...o,
});

describe('delta base', () => {
  it('takes the newest exported snapshot, not the one just taken, and counts the chain', () => {
    const choice = chooseBaseSnapshot(
      [
        snap('a', '20260101T000000Z', { deltaChainLength: 3 }),
        snap('b', '20260102T000000Z', { exported: false }),
        snap('now', '20260103T000000Z'),
      ],
      0,
      'now',
    );
    expect(choice.base?.uuid).toBe('a');
    expect(choice.deltaChainLength).toBe(4);
  });

  it('forces a full at the full interval', () => {
    const choice = chooseBaseSnapshot([snap('a', '20260101T000000Z', { deltaChainLength: 6 })], 7);
    expect(choice.base).toBeUndefined();
    expect(choice).toMatchObject({ deltaChainLength: 0, reason: 'full interval reached (7 of 7)' });
    expect(chooseBaseSnapshot([snap('a', '20260101T000000Z', { deltaChainLength: 5 })], 7).base?.uuid).toBe(
      'a',
    );
  });

  it('per disk: delta, full for a new disk, full where a remote lacks the base', () => {
    const choice = chooseBaseSnapshot(
      [snap('a', '20260101T000000Z', { vdis: { live1: 'a1', live2: 'a2' } })],
      0,
    );
    const plans = planDisks(['live1', 'live2', 'live3'], choice, (v) => (v === 'live2' ? ['usb'] : []));
    expect(plans.map((p) => [p.liveVdiUuid, p.baseVdiUuid, p.reason])).toEqual([
      ['live1', 'a1', 'delta from 20260101T000000Z'],
      ['live2', undefined, 'full: base backup of 20260101T000000Z missing or broken on usb'],
      ['live3', undefined, 'full: new disk (not in the base snapshot)'],
    ]);
  });
});

describe('snapshot retention on the VM', () => {
  const entries = [
    { uuid: 's1', datetime: '20260101T000000Z', scheduleId: 'daily', exported: true },
    { uuid: 's2', datetime: '20260102T000000Z', scheduleId: 'daily', exported: true },
    { uuid: 'w1', datetime: '20260102T120000Z', scheduleId: 'weekly', exported: true },
    { uuid: 's3', datetime: '20260103T000000Z', scheduleId: 'daily', exported: false },
  ];
  const kept = (v: ReturnType<typeof decideSnapshotRetention>) =>
    v
      .filter((x) => x.keep)
      .map((x) => x.uuid)
      .sort();

  it("delta keeps the base of the next delta and this schedule's newest exported; an unexported one goes", () => {
    const v = decideSnapshotRetention({ mode: 'delta', scheduleId: 'daily', keep: 1, snapshots: entries });
    expect(kept(v)).toEqual(['s2', 'w1']);
    expect(v.find((x) => x.uuid === 's3')?.why).toBe('not exported (left by an unfinished run)');
  });

  it('full with snapshot retention 0 keeps nothing of this schedule', () => {
    const v = decideSnapshotRetention({ mode: 'full', scheduleId: 'daily', keep: 0, snapshots: entries });
    expect(kept(v)).toEqual(['w1']);
  });

  it('snapshot mode counts every snapshot: the newest N stay', () => {
    const v = decideSnapshotRetention({ mode: 'snapshot', scheduleId: 'daily', keep: 2, snapshots: entries });
    expect(kept(v)).toEqual(['s2', 's3', 'w1']);
  });
});

describe('outcomes', () => {
  const step = (status: 'success' | 'failure' | 'skipped' | 'running') => ({
    name: 'x',
    status,
    start: '2026-01-01T00:00:00.000Z',
  });
  it('a VM fails if any step failed; a run fails if any VM failed; nothing to do is skipped', () => {
    expect(vmOutcome([step('success'), step('skipped')])).toBe('success');
    expect(vmOutcome([step('success'), step('failure')])).toBe('failure');
    expect(runOutcome([])).toBe('skipped');
    expect(runOutcome([{ status: 'success' }, { status: 'failure' }])).toBe('failure');
    expect(runOutcome([{ status: 'skipped' }, { status: 'skipped' }])).toBe('skipped');
  });
});

describe('search attributes', () => {
  it('a VM list too long for one search attribute value is left to the children', async () => {
    const { keywordListIfItFits } = await import('../../core/search-attributes');
    const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    expect(keywordListIfItFits([uuid(1), uuid(2)])).toEqual([uuid(1), uuid(2)]);
    const many = Array.from({ length: 200 }, (_, i) => uuid(i));
    expect(keywordListIfItFits(many)).toBeUndefined();
  });
});
