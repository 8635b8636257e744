// Times as the CLI prints them: in the zone of the run's schedule, else this machine's; and the
// `xcpb backups list` table that prints them. Pure values, no server.
import { describe, expect, it } from 'vitest';
import { type BackupRow, formatBackupTable } from '../../cli/backups';
import { plainStyle, type Style } from '../../cli/report-format';
import { formatInZone, zoneInConfig, zonesOf } from '../../cli/zones';

const config = {
  jobs: [
    {
      id: 'nightly',
      schedules: [
        { id: 'daily', timezone: 'Europe/Paris' },
        { id: 'weekly', timezone: 'Asia/Tokyo' },
      ],
    },
  ],
} as unknown as Parameters<typeof zoneInConfig>[0];

const t = Date.UTC(2026, 6, 1, 1, 30, 0); // summer: Paris is UTC+2

describe('formatInZone', () => {
  it('reads an instant as the wall clock of a zone, with the zone', () => {
    expect(formatInZone(t, 'UTC')).toBe('2026-07-01 01:30:00 UTC');
    expect(formatInZone(new Date(t), 'Europe/Paris')).toBe('2026-07-01 03:30:00 CEST');
    expect(formatInZone(new Date(t).toISOString(), 'America/Los_Angeles')).toBe('2026-06-30 18:30:00 GMT-7');
  });
});

describe('the zone of a run', () => {
  it("is its schedule's in the config", () => {
    expect(zoneInConfig(config, { jobId: 'nightly', scheduleId: 'weekly' })).toBe('Asia/Tokyo');
    expect(zoneInConfig(config, { jobId: 'nightly', scheduleId: 'gone' })).toBeUndefined();
    expect(zoneInConfig(config, { jobId: 'nightly' })).toBeUndefined();
  });

  it("falls back to this machine's zone for a run of no schedule (or of one no longer known)", async () => {
    const zoneOf = await zonesOf(
      [{ jobId: 'nightly', scheduleId: 'daily' }, { jobId: 'nightly' }, { jobId: 'x', scheduleId: 'y' }],
      { config, fallback: 'America/Denver' },
    );
    expect(zoneOf({ jobId: 'nightly', scheduleId: 'daily' })).toBe('Europe/Paris');
    expect(zoneOf({ jobId: 'nightly' })).toBe('America/Denver');
    expect(zoneOf({ jobId: 'x', scheduleId: 'y' })).toBe('America/Denver');
  });
});

describe('formatBackupTable', () => {
  const row = (over: Partial<BackupRow>): BackupRow => ({
    id: 'nas:uuid-a/20260701T013000Z',
    remoteId: 'nas',
    vmUuid: 'uuid-a',
    vmName: 'web',
    time: new Date(t).toISOString(),
    mode: 'delta',
    jobId: 'nightly',
    scheduleId: 'daily',
    size: 3 * 1024 * 1024,
    chainLength: 2,
    status: 'ok',
    problems: [],
    ...over,
  });

  it('one row a backup, its time in its schedule zone; a broken one painted, its problems below', () => {
    const tagged: Style = { ...plainStyle, red: (s) => `<r>${s}</r>`, dim: (s) => `<d>${s}</d>` };
    const rows = [
      row({}),
      row({
        id: 'nas:uuid-b/20260701T013000Z',
        vmName: 'db',
        mode: 'full',
        scheduleId: undefined,
        size: undefined,
        status: 'broken',
        problems: ['the XVA is missing'],
      }),
    ];
    const zoneOf = (r: BackupRow) => zoneInConfig(config, r) ?? 'UTC';
    expect(formatBackupTable(rows, plainStyle, zoneOf).split('\n')).toEqual([
      'ID                           VM   TIME                      MODE   JOB      SIZE     CHAIN  STATUS',
      'nas:uuid-a/20260701T013000Z  web  2026-07-01 03:30:00 CEST  delta  nightly  3.0 MiB  2      ok',
      'nas:uuid-b/20260701T013000Z  db   2026-07-01 01:30:00 UTC   full   nightly  -        -      broken',
      'nas:uuid-b/20260701T013000Z is broken:',
      '    the XVA is missing',
    ]);
    const painted = formatBackupTable(rows, tagged, zoneOf);
    expect(painted).toContain('<r>broken</r>');
    expect(painted).toContain('<d>    the XVA is missing</d>');
    expect(formatBackupTable([])).toBe('no backups');
  });
});
