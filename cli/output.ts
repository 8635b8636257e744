// Small shared helpers of the xcpb commands: usage errors, colour (picocolors: off when stdout is
// not a terminal or NO_COLOR is set), counts and times as people read them.
import pc from 'picocolors';

export class UsageError extends Error {}

export const green = pc.green;
export const red = pc.red;
export const orange = pc.yellow;
export const dim = pc.dim;
export const bold = pc.bold;

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export { plural } from '../core/words';

/** A time as it reads in a zone: `2026-11-30 03:00:00 CET`. */
export function formatInZone(date: Date | number, timeZone = 'UTC'): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'short',
    })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}
