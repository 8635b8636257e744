// The one place the CLI turns an instant into text: in the zone of the run's schedule (as people
// read the schedule's cron), or in this machine's zone for a run of no schedule. The zone comes
// from the config when the command has one, else from the Temporal schedule (`xcpb apply` put the
// config's zone in its spec), else this machine's.
import type { Client } from '@temporalio/client';
import type { Config } from '../core/config/schema';
import { scheduleWorkflowId } from '../core/job-input';

/** This machine's IANA zone (TZ, else the system's). */
export function localZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** A time as it reads in a zone: `2026-11-30 03:00:00 CET`. */
export function formatInZone(date: Date | number | string, timeZone = localZone()): string {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'short',
    });
    formatters.set(timeZone, formatter);
  }
  const parts = Object.fromEntries(formatter.formatToParts(new Date(date)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}

/** What a run says of its schedule (a run report, a `runs` row, a backup's metadata). */
export interface ScheduledThing {
  jobId?: string;
  scheduleId?: string;
}

/** The zone of a run's schedule as the config has it; undefined when the config has no such schedule. */
export function zoneInConfig(config: Pick<Config, 'jobs'>, run: ScheduledThing): string | undefined {
  if (!run.jobId || !run.scheduleId) return undefined;
  return config.jobs.find((j) => j.id === run.jobId)?.schedules.find((s) => s.id === run.scheduleId)
    ?.timezone;
}

/**
 * The zone of each of `runs`, looked up once per schedule: the config's, else the Temporal
 * schedule's (when a client is given and the schedule exists), else `fallback` (this machine's).
 */
export async function zonesOf(
  runs: readonly ScheduledThing[],
  from: { config?: Pick<Config, 'jobs'>; client?: Client; fallback?: string },
): Promise<(run: ScheduledThing) => string> {
  const fallback = from.fallback ?? localZone();
  const key = (r: ScheduledThing) =>
    r.jobId && r.scheduleId ? scheduleWorkflowId(r.jobId, r.scheduleId) : '';
  const zones = new Map<string, string>();
  for (const run of runs) {
    const k = key(run);
    if (!k || zones.has(k)) continue;
    const zone =
      (from.config && zoneInConfig(from.config, run)) ??
      (from.client ? await temporalScheduleZone(from.client, k) : undefined);
    zones.set(k, zone ?? fallback);
  }
  return (run) => zones.get(key(run)) ?? fallback;
}

async function temporalScheduleZone(client: Client, scheduleId: string): Promise<string | undefined> {
  try {
    return (await client.schedule.getHandle(scheduleId).describe()).spec.timezone;
  } catch {
    return undefined; // deleted since, or never applied: the run's times in this machine's zone
  }
}
