import { describe, expect, it } from 'vitest';
import {
  type ChainBackup,
  decideRetention,
  planChainRetention,
  type RetentionCandidate,
  type RetentionPolicy,
  type VhdLink,
} from '../../core/retention';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 10, 1, 2, 0); // Sunday 2026-11-01 02:00 UTC

const backup = (
  id: string,
  timestamp: number,
  extra: Partial<RetentionCandidate> = {},
): RetentionCandidate => ({
  id,
  timestamp,
  scheduleId: 'nightly',
  mode: 'delta',
  ok: true,
  ...extra,
});

const policy = (extra: Partial<RetentionPolicy> = {}): RetentionPolicy => ({
  scheduleId: 'nightly',
  mode: 'delta',
  remote: 3,
  timeZone: 'UTC',
  ...extra,
});

const daily = (n: number, step = DAY) => Array.from({ length: n }, (_, i) => backup(`b${i}`, T0 + i * step));
const ids = (list: { id: string }[]) => list.map((x) => x.id);

describe('decideRetention: last N', () => {
  it('keeps the newest N and says why; removes the rest and says why', () => {
    const d = decideRetention(daily(5), policy());
    expect(d.keep).toEqual([
      { id: 'b2', reasons: ['last 3 (#3)'], tags: [] },
      { id: 'b3', reasons: ['last 3 (#2)'], tags: [] },
      { id: 'b4', reasons: ['last 3 (#1)'], tags: [] },
    ]);
    expect(d.remove).toEqual([
      { id: 'b0', reason: 'older than the last 3' },
      { id: 'b1', reason: 'older than the last 3' },
    ]);
    expect(d.describe()[0]).toBe('remove b0: older than the last 3');
    expect(d.describe()[4]).toBe('keep   b4: last 3 (#1)');
  });

  it('N=1 keeps only the newest', () => {
    expect(ids(decideRetention(daily(4), policy({ remote: 1 })).keep)).toEqual(['b3']);
  });

  it('rejects N=0, negative or fractional N, with the field name', () => {
    for (const remote of [0, -1, 1.5, Number.NaN]) {
      expect(() => decideRetention(daily(2), policy({ remote }))).toThrow(/retention\.remote/);
    }
  });

  it('rejects bad long-term counts and unknown timezones', () => {
    expect(() => decideRetention([], policy({ longTerm: { daily: -1 } }))).toThrow(/longTerm\.daily/);
    expect(() => decideRetention([], policy({ timeZone: 'Nowhere/City' }))).toThrow(/Nowhere\/City/);
  });

  it('keeps fewer than N when there are fewer', () => {
    const d = decideRetention(daily(2), policy());
    expect(ids(d.keep)).toEqual(['b0', 'b1']);
    expect(d.remove).toEqual([]);
  });

  it('does not count broken backups: the newest good ones survive failed runs', () => {
    const list = [
      ...daily(3),
      backup('failed1', T0 + 3 * DAY, { ok: false, problem: 'missing VHD vdis/j/d/x.vhd' }),
      backup('failed2', T0 + 4 * DAY, { ok: false }),
    ];
    const d = decideRetention(list, policy({ remote: 2 }));
    expect(ids(d.keep)).toEqual(['b1', 'b2']);
    expect(d.remove).toEqual([
      { id: 'b0', reason: 'older than the last 2' },
      { id: 'failed1', reason: 'broken: missing VHD vdis/j/d/x.vhd (not counted)' },
      { id: 'failed2', reason: 'broken (not counted)' },
    ]);
  });

  it('leaves other schedules and other modes alone', () => {
    const list = [
      ...daily(3),
      backup('weekly0', T0 - DAY, { scheduleId: 'weekly' }),
      backup('weekly1', T0 + 10 * DAY, { scheduleId: 'weekly', ok: false }),
      backup('xva0', T0 - 2 * DAY, { mode: 'full' }),
    ];
    const d = decideRetention(list, policy({ remote: 1 }));
    expect(d.keep).toEqual([
      { id: 'xva0', reasons: ['other mode (full)'], tags: [] },
      { id: 'weekly0', reasons: ['other schedule (weekly)'], tags: [] },
      { id: 'b2', reasons: ['last 1 (#1)'], tags: [] },
      { id: 'weekly1', reasons: ['other schedule (weekly)'], tags: [] },
    ]);
    expect(ids(d.remove)).toEqual(['b0', 'b1']);
  });

  it('orders equal timestamps by id, whatever the input order', () => {
    const a = [backup('z', T0), backup('a', T0), backup('m', T0)];
    const d1 = decideRetention(a, policy({ remote: 1 }));
    const d2 = decideRetention([...a].reverse(), policy({ remote: 1 }));
    expect(ids(d1.keep)).toEqual(['z']);
    expect(d2).toMatchObject({ keep: d1.keep, remove: d1.remove });
  });

  it('refuses duplicate ids', () => {
    expect(() => decideRetention([backup('a', T0), backup('a', T0 + 1)], policy())).toThrow(/duplicate/);
  });
});

describe('decideRetention: long-term (GFS) like Xen Orchestra', () => {
  it('keeps the OLDEST backup of each of the last N daily buckets', () => {
    // 3 backups a day (02:00, 10:00, 18:00) for 4 days.
    const list = daily(12, 8 * HOUR);
    const d = decideRetention(list, policy({ remote: 1, longTerm: { daily: 2 } }));
    expect(d.keep).toEqual([
      { id: 'b6', reasons: ['daily 2026-11-03'], tags: ['daily=2026-11-03'] },
      { id: 'b9', reasons: ['daily 2026-11-04'], tags: ['daily=2026-11-04'] },
      { id: 'b11', reasons: ['last 1 (#1)'], tags: [] },
    ]);
    expect(d.remove.find((r) => r.id === 'b0')?.reason).toBe('older than the last 1 and not kept by 2 daily');
  });

  it('counts only buckets that hold a backup (a gap extends the reach)', () => {
    const list = [backup('mon', T0 + DAY), backup('thu', T0 + 4 * DAY), backup('sat', T0 + 6 * DAY)];
    const d = decideRetention(list, policy({ remote: 1, longTerm: { daily: 3 } }));
    expect(ids(d.keep)).toEqual(['mon', 'thu', 'sat']);
  });

  it('combines periods: a backup kept by several rules lists every reason', () => {
    // one backup a day from Sunday 2026-11-01 for 15 days
    const d = decideRetention(
      daily(15),
      policy({ remote: 1, longTerm: { daily: 1, weekly: 2, monthly: 1 } }),
    );
    const reasons = Object.fromEntries(d.keep.map((k) => [k.id, k.reasons]));
    expect(reasons).toEqual({
      b0: ['monthly 2026-11'],
      b7: ['weekly 2026-46'],
      b14: ['last 1 (#1)', 'daily 2026-11-15', 'weekly 2026-47'],
    });
  });

  it('computes days in the schedule timezone, across the DST change', () => {
    // Paris, spring 2026: 23:30 local on the 28th, 00:30 and 23:30 on the 29th, 00:30 on the 30th.
    const list = [
      backup('28-late', Date.UTC(2026, 2, 28, 22, 30)),
      backup('29-early', Date.UTC(2026, 2, 28, 23, 30)),
      backup('29-late', Date.UTC(2026, 2, 29, 21, 30)),
      backup('30-early', Date.UTC(2026, 2, 29, 22, 30)),
    ];
    const paris = decideRetention(
      list,
      policy({ remote: 1, longTerm: { daily: 3 }, timeZone: 'Europe/Paris' }),
    );
    expect(paris.keep.map((k) => [k.id, k.tags])).toEqual([
      ['28-late', ['daily=2026-03-28']],
      ['29-early', ['daily=2026-03-29']],
      ['30-early', ['daily=2026-03-30']],
    ]);
    // In UTC the same instants fall on 28, 28, 29, 29.
    const utc = decideRetention(list, policy({ remote: 1, longTerm: { daily: 3 }, timeZone: 'UTC' }));
    expect(utc.keep.map((k) => [k.id, k.tags])).toEqual([
      ['28-late', ['daily=2026-03-28']],
      ['29-late', ['daily=2026-03-29']],
      ['30-early', []],
    ]);
  });

  it('ignores broken backups for long-term buckets too', () => {
    const list = [backup('good', T0), backup('bad', T0 + DAY, { ok: false }), backup('new', T0 + 2 * DAY)];
    const d = decideRetention(list, policy({ remote: 1, longTerm: { daily: 2 } }));
    expect(ids(d.keep)).toEqual(['good', 'new']);
    expect(ids(d.remove)).toEqual(['bad']);
  });
});

// Chains: VHD paths per disk directory, one VHD per backup, parent = previous file.
function chain(dir: string, names: string[], fullAt: string[] = [names[0]!]): VhdLink[] {
  return names.map((name, i) => ({
    path: `${dir}/${name}.vhd`,
    parent: fullAt.includes(name) ? null : `${dir}/${names[i - 1]}.vhd`,
  }));
}
const deltas = (names: string[], dirs = ['d1']): ChainBackup[] =>
  names.map((name) => ({ id: name, vhds: dirs.map((dir) => `${dir}/${name}.vhd`) }));

describe('planChainRetention', () => {
  it('a single full delta removed with no child: delete it', () => {
    const plan = planChainRetention({ backups: deltas(['a']), vhds: chain('d1', ['a']), remove: ['a'] });
    expect(plan.describe()).toEqual(['delete backup a', 'delete d1/a.vhd (no kept backup needs it)']);
  });

  it('full + 1 delta, removing the full: the delta merges into it and becomes the full', () => {
    const plan = planChainRetention({
      backups: deltas(['a', 'b']),
      vhds: chain('d1', ['a', 'b']),
      remove: ['a'],
    });
    expect(plan.operations).toEqual([
      { kind: 'merge', child: 'd1/b.vhd', parent: 'd1/a.vhd' },
      { kind: 'update-metadata', backupId: 'b', vhd: 'd1/b.vhd', differencing: false },
      { kind: 'delete-backup', backupId: 'a' },
    ]);
  });

  it('many deltas, removing the oldest three: merge them one by one into the full, oldest first', () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const plan = planChainRetention({
      backups: deltas(names),
      vhds: chain('d1', names),
      remove: ['a', 'b', 'c'],
    });
    expect(plan.operations).toEqual([
      { kind: 'merge', child: 'd1/b.vhd', parent: 'd1/a.vhd' },
      { kind: 'merge', child: 'd1/c.vhd', parent: 'd1/b.vhd' },
      { kind: 'merge', child: 'd1/d.vhd', parent: 'd1/c.vhd' },
      { kind: 'update-metadata', backupId: 'd', vhd: 'd1/d.vhd', differencing: false },
      { kind: 'delete-backup', backupId: 'a' },
      { kind: 'delete-backup', backupId: 'b' },
      { kind: 'delete-backup', backupId: 'c' },
    ]);
  });

  it('a removed delta in the middle (long-term gap): the next kept one merges into it and stays a delta', () => {
    const names = ['a', 'b', 'c'];
    const plan = planChainRetention({ backups: deltas(names), vhds: chain('d1', names), remove: ['b'] });
    expect(plan.operations).toEqual([
      { kind: 'merge', child: 'd1/c.vhd', parent: 'd1/b.vhd' },
      { kind: 'update-metadata', backupId: 'c', vhd: 'd1/c.vhd', differencing: true },
      { kind: 'delete-backup', backupId: 'b' },
    ]);
  });

  it('a full in the middle starts a new chain: the old chain is deleted, newest file first', () => {
    const names = ['a', 'b', 'c', 'd'];
    const plan = planChainRetention({
      backups: deltas(names),
      vhds: chain('d1', names, ['a', 'c']),
      remove: ['a', 'b'],
    });
    expect(plan.operations).toEqual([
      { kind: 'delete-backup', backupId: 'a' },
      { kind: 'delete-backup', backupId: 'b' },
      { kind: 'delete-vhd', path: 'd1/b.vhd' },
      { kind: 'delete-vhd', path: 'd1/a.vhd' },
    ]);
  });

  it('plans every disk of a backup, each in its own directory', () => {
    const names = ['a', 'b'];
    const plan = planChainRetention({
      backups: deltas(names, ['d1', 'd2']),
      vhds: [...chain('d1', names), ...chain('d2', names, ['a', 'b'])],
      remove: ['a'],
    });
    expect(plan.describe()).toEqual([
      'merge d1/b.vhd into its parent d1/a.vhd (the merged file takes the name d1/b.vhd)',
      'update b: d1/b.vhd is now a full disk',
      'delete backup a',
      'delete d2/a.vhd (no kept backup needs it)',
    ]);
  });

  it('an orphan VHD left by an earlier run (no backup references it) is merged or deleted', () => {
    const vhds = chain('d1', ['orphan', 'b', 'leftover']);
    const plan = planChainRetention({ backups: deltas(['b']), vhds, remove: [] });
    expect(plan.operations).toEqual([
      { kind: 'merge', child: 'd1/b.vhd', parent: 'd1/orphan.vhd' },
      { kind: 'update-metadata', backupId: 'b', vhd: 'd1/b.vhd', differencing: false },
      { kind: 'delete-vhd', path: 'd1/leftover.vhd' },
    ]);
  });

  it('a full (XVA) backup is just deleted', () => {
    const plan = planChainRetention({ backups: [{ id: 'x', vhds: [] }], vhds: [], remove: ['x'] });
    expect(plan.operations).toEqual([{ kind: 'delete-backup', backupId: 'x' }]);
  });

  it('refuses unknown ids, forks and loops instead of guessing', () => {
    expect(() => planChainRetention({ backups: [], vhds: [], remove: ['nope'] })).toThrow(/unknown backup/);
    const fork: VhdLink[] = [
      { path: 'a', parent: null },
      { path: 'b', parent: 'a' },
      { path: 'c', parent: 'a' },
    ];
    expect(() => planChainRetention({ backups: [], vhds: fork, remove: [] })).toThrow(/two children/);
    const loop: VhdLink[] = [
      { path: 'a', parent: 'b' },
      { path: 'b', parent: 'a' },
    ];
    expect(() => planChainRetention({ backups: [], vhds: loop, remove: [] })).toThrow(/loop/);
  });
});
