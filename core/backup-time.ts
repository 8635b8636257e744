// Backup time names and calendar buckets. Pure: no clock, no I/O.
//
// `<ts>` names every file of one backup on a remote: UTC `YYYYMMDDTHHmmssZ` (Xen Orchestra's
// `formatFilenameDate`). Calendar buckets are what long-term (GFS) retention counts; they are computed
// in the schedule's IANA timezone with Intl.DateTimeFormat, and their labels are Xen Orchestra's
// (`YYYY-MM-DD`, moment's `gggg-ww` for the default `en` locale, `YYYY-MM`, `YYYY`) so the `tags` we
// write into metadata read the same as XO's.

const BACKUP_TIMESTAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

const pad = (value: number, width = 2): string => String(value).padStart(width, '0');

/** `1768442400000` → `20260115T020000Z` (UTC, seconds precision: milliseconds are dropped). */
export function formatBackupTimestamp(epochMs: number): string {
  if (!Number.isFinite(epochMs)) throw new RangeError(`not a time: ${epochMs}`);
  const d = new Date(epochMs);
  const year = d.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError(`year out of range for a backup name: ${year}`);
  return (
    pad(year, 4) +
    pad(d.getUTCMonth() + 1) +
    pad(d.getUTCDate()) +
    'T' +
    pad(d.getUTCHours()) +
    pad(d.getUTCMinutes()) +
    pad(d.getUTCSeconds()) +
    'Z'
  );
}

/** `20260115T020000Z` → epoch ms; undefined for anything else (including impossible dates). */
export function parseBackupTimestamp(name: string): number | undefined {
  const m = BACKUP_TIMESTAMP.exec(name);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC rolls 20260230 over into March: reject instead of guessing.
  return formatBackupTimestamp(ms) === name ? ms : undefined;
}

/** True for a string that is exactly a `<ts>` name. */
export function isBackupTimestamp(name: string): boolean {
  return parseBackupTimestamp(name) !== undefined;
}

/** Wall-clock fields of an instant in a timezone (month 1–12). */
export interface LocalDateTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    // Throws RangeError for an unknown zone, which is what callers want to surface.
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** Throws a RangeError naming the zone if it is not a valid IANA timezone. */
export function assertTimeZone(timeZone: string): void {
  try {
    formatterFor(timeZone);
  } catch {
    throw new RangeError(`unknown timezone: ${JSON.stringify(timeZone)}`);
  }
}

export function toLocalDateTime(epochMs: number, timeZone: string): LocalDateTime {
  assertTimeZone(timeZone);
  const fields: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(new Date(epochMs))) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  return {
    year: fields.year!,
    month: fields.month!,
    day: fields.day!,
    hour: fields.hour! % 24,
    minute: fields.minute!,
    second: fields.second!,
  };
}

export type RetentionPeriod = 'daily' | 'weekly' | 'monthly' | 'yearly';
export const RETENTION_PERIODS: readonly RetentionPeriod[] = ['daily', 'weekly', 'monthly', 'yearly'];

/**
 * Xen Orchestra's optional bucket offsets: a day that starts at 02:00, a week that starts N days after
 * Sunday, a month or year that starts N days late. Applied as wall-clock shifts, as XO does.
 */
export interface BucketOffsets {
  firstHourOfTheDay?: number;
  firstDayOfWeek?: number;
  firstDayOfMonth?: number;
  firstDayOfYear?: number;
}

const DAY_MS = 86_400_000;

// Calendar arithmetic on wall-clock fields, done in UTC so no zone rule interferes.
function wallClockMs(t: LocalDateTime): number {
  return Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second);
}

function calendarOf(ms: number): { year: number; month: number; day: number; weekday: number } {
  const d = new Date(ms);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    weekday: d.getUTCDay(),
  };
}

/**
 * moment's `gggg-ww` in the `en` locale: weeks start on Sunday and week 1 is the week holding
 * January 1st, so a week belongs to the year of its Saturday.
 */
function localeWeekLabel(wallMs: number): string {
  const { weekday } = calendarOf(wallMs);
  const saturday = calendarOf(wallMs + (6 - weekday) * DAY_MS);
  const dayOfYear =
    (Date.UTC(saturday.year, saturday.month - 1, saturday.day) - Date.UTC(saturday.year, 0, 1)) / DAY_MS;
  return `${pad(saturday.year, 4)}-${pad(Math.floor(dayOfYear / 7) + 1)}`;
}

/**
 * The bucket label of an instant for a period, in a timezone: daily `2026-11-25`, weekly `2026-48`,
 * monthly `2026-11`, yearly `2026`. Two backups share a bucket exactly when their labels are equal.
 */
export function retentionBucket(
  period: RetentionPeriod,
  epochMs: number,
  timeZone: string,
  offsets: BucketOffsets = {},
): string {
  const wall = wallClockMs(toLocalDateTime(epochMs, timeZone));
  switch (period) {
    case 'daily': {
      const c = calendarOf(wall - (offsets.firstHourOfTheDay ?? 0) * 3_600_000);
      return `${pad(c.year, 4)}-${pad(c.month)}-${pad(c.day)}`;
    }
    case 'weekly':
      return localeWeekLabel(wall - (offsets.firstDayOfWeek ?? 0) * DAY_MS);
    case 'monthly': {
      const c = calendarOf(wall - (offsets.firstDayOfMonth ?? 0) * DAY_MS);
      return `${pad(c.year, 4)}-${pad(c.month)}`;
    }
    case 'yearly':
      return pad(calendarOf(wall - (offsets.firstDayOfYear ?? 0) * DAY_MS).year, 4);
  }
}
