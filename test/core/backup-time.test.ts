import { describe, expect, it } from 'vitest';
import {
  formatBackupTimestamp,
  isBackupTimestamp,
  parseBackupTimestamp,
  retentionBucket,
  toLocalDateTime,
} from '../../core/backup-time';

describe('backup timestamp names', () => {
  it('formats in UTC as YYYYMMDDTHHmmssZ, dropping milliseconds', () => {
    expect(formatBackupTimestamp(Date.UTC(2026, 0, 15, 2, 0, 0, 999))).toBe('20260115T020000Z');
    expect(formatBackupTimestamp(Date.UTC(1999, 11, 31, 23, 59, 59))).toBe('19991231T235959Z');
  });

  it('parses what it formats', () => {
    const t = Date.UTC(2026, 10, 25, 3, 4, 5);
    expect(parseBackupTimestamp(formatBackupTimestamp(t))).toBe(t);
  });

  it('rejects anything that is not exactly a valid name', () => {
    for (const name of [
      '20260230T000000Z',
      '20260115T020000',
      '20260115t020000Z',
      '2026115T020000Z',
      'x',
      '',
    ]) {
      expect(parseBackupTimestamp(name), name).toBeUndefined();
      expect(isBackupTimestamp(name)).toBe(false);
    }
  });
});

describe('calendar buckets in a timezone', () => {
  it('reads wall-clock fields in the zone', () => {
    expect(toLocalDateTime(Date.UTC(2026, 10, 25, 23, 30), 'Europe/Paris')).toEqual({
      year: 2026,
      month: 11,
      day: 26,
      hour: 0,
      minute: 30,
      second: 0,
    });
  });

  it('puts the day boundary at local midnight, on both sides of the spring DST change', () => {
    // Europe/Paris moves from +01:00 to +02:00 on 2026-03-29 at 01:00 UTC.
    expect(retentionBucket('daily', Date.UTC(2026, 2, 28, 22, 59), 'Europe/Paris')).toBe('2026-03-28');
    expect(retentionBucket('daily', Date.UTC(2026, 2, 28, 23, 0), 'Europe/Paris')).toBe('2026-03-29');
    expect(retentionBucket('daily', Date.UTC(2026, 2, 29, 21, 59), 'Europe/Paris')).toBe('2026-03-29');
    expect(retentionBucket('daily', Date.UTC(2026, 2, 29, 22, 0), 'Europe/Paris')).toBe('2026-03-30');
    // The same instant is another day in UTC and in New York.
    expect(retentionBucket('daily', Date.UTC(2026, 2, 29, 22, 0), 'UTC')).toBe('2026-03-29');
    expect(retentionBucket('daily', Date.UTC(2026, 2, 30, 3, 0), 'America/New_York')).toBe('2026-03-29');
  });

  it('handles the autumn DST change (a 25-hour day)', () => {
    // 2026-10-25 in Paris lasts from 2026-10-24T22:00Z to 2026-10-25T23:00Z.
    expect(retentionBucket('daily', Date.UTC(2026, 9, 24, 22, 0), 'Europe/Paris')).toBe('2026-10-25');
    expect(retentionBucket('daily', Date.UTC(2026, 9, 25, 22, 59), 'Europe/Paris')).toBe('2026-10-25');
    expect(retentionBucket('daily', Date.UTC(2026, 9, 25, 23, 0), 'Europe/Paris')).toBe('2026-10-26');
  });

  it('labels weeks like moment gggg-ww (en): Sunday first, week 1 holds January 1st', () => {
    // 2026-01-01 is a Thursday: its week runs Sun 2025-12-28 .. Sat 2026-01-03.
    expect(retentionBucket('weekly', Date.UTC(2025, 11, 28, 12), 'UTC')).toBe('2026-01');
    expect(retentionBucket('weekly', Date.UTC(2026, 0, 3, 12), 'UTC')).toBe('2026-01');
    expect(retentionBucket('weekly', Date.UTC(2025, 11, 27, 12), 'UTC')).toBe('2025-52');
    expect(retentionBucket('weekly', Date.UTC(2026, 0, 4, 12), 'UTC')).toBe('2026-02');
    // Saturday 23:30 in Paris is already Sunday in UTC+1: a new week there.
    expect(retentionBucket('weekly', Date.UTC(2026, 10, 28, 23, 30), 'Europe/Paris')).toBe('2026-49');
    expect(retentionBucket('weekly', Date.UTC(2026, 10, 28, 23, 30), 'UTC')).toBe('2026-48');
  });

  it('labels months and years in the zone', () => {
    const newYearInTokyo = Date.UTC(2026, 11, 31, 15, 30);
    expect(retentionBucket('monthly', newYearInTokyo, 'Asia/Tokyo')).toBe('2027-01');
    expect(retentionBucket('yearly', newYearInTokyo, 'Asia/Tokyo')).toBe('2027');
    expect(retentionBucket('monthly', newYearInTokyo, 'UTC')).toBe('2026-12');
    expect(retentionBucket('yearly', newYearInTokyo, 'UTC')).toBe('2026');
  });

  it('applies XO offsets: a day that starts at 02:00, a month that starts on the 2nd', () => {
    expect(retentionBucket('daily', Date.UTC(2026, 4, 10, 1, 30), 'UTC', { firstHourOfTheDay: 2 })).toBe(
      '2026-05-09',
    );
    expect(retentionBucket('daily', Date.UTC(2026, 4, 10, 2, 0), 'UTC', { firstHourOfTheDay: 2 })).toBe(
      '2026-05-10',
    );
    expect(retentionBucket('monthly', Date.UTC(2026, 4, 1, 12), 'UTC', { firstDayOfMonth: 1 })).toBe(
      '2026-04',
    );
  });

  it('rejects an unknown timezone with its name', () => {
    expect(() => retentionBucket('daily', 0, 'Mars/Olympus')).toThrow(/Mars\/Olympus/);
  });
});
