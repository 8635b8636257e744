// Turns the text of a configuration file into a checked Config, or into every problem found, each
// with the path of the field at fault. Pure: reading the file is the caller's job.
import { CronExpressionParser } from 'cron-parser';
import YAML from 'yaml';
import type { z } from 'zod';
import { parseDuration } from '../duration';
import { formatPath } from './path';

export { formatPath };

import { Config } from './schema';

export interface ConfigProblem {
  path: string; // e.g. "jobs[0].schedules[1].cron", "" for the whole file
  message: string;
}

export type ConfigResult = { ok: true; config: Config } | { ok: false; problems: ConfigProblem[] };

export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('\n');
}

/** Parses YAML (JSON is YAML) and reports a syntax error with its line and column. */
export function parseConfigText(text: string): ConfigResult {
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? `line ${pos.line}, column ${pos.col}: ` : '';
        return { path: '', message: `YAML syntax error at ${where}${e.message.split(' at line ')[0]}` };
      }),
    };
  }
  return validateConfig(doc.toJS() ?? {});
}

export function validateConfig(input: unknown): ConfigResult {
  const parsed = Config.safeParse(input);
  if (!parsed.success) return { ok: false, problems: zodProblems(parsed.error) };
  const problems = crossCheck(parsed.data);
  return problems.length ? { ok: false, problems } : { ok: true, config: parsed.data };
}

function zodProblems(error: z.ZodError): ConfigProblem[] {
  return error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
}

function duplicates<T>(
  items: readonly T[],
  key: (t: T) => string,
  where: (i: number) => string,
): ConfigProblem[] {
  const seen = new Map<string, number>();
  const problems: ConfigProblem[] = [];
  items.forEach((item, i) => {
    const k = key(item);
    const first = seen.get(k);
    if (first === undefined) seen.set(k, i);
    else problems.push({ path: `${where(i)}.id`, message: `duplicate id "${k}" (also at ${where(first)})` });
  });
  return problems;
}

const CRON_MACROS = new Set([
  '@yearly',
  '@annually',
  '@monthly',
  '@weekly',
  '@daily',
  '@midnight',
  '@hourly',
]);

export function cronProblem(cron: string, timezone: string): string | undefined {
  const fields = cron.trim().split(/\s+/);
  if (!(CRON_MACROS.has(cron.trim()) || fields.length === 5)) {
    return `"${cron}" is not a cron expression: expected 5 fields (minute hour day-of-month month day-of-week) or a macro like @daily`;
  }
  try {
    CronExpressionParser.parse(cron, { tz: timezone });
    return undefined;
  } catch (err) {
    return `"${cron}" does not parse: ${(err as Error).message}`;
  }
}

export function timezoneExists(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

function crossCheck(config: Config): ConfigProblem[] {
  const problems: ConfigProblem[] = [
    ...duplicates(
      config.pools,
      (p) => p.id,
      (i) => `pools[${i}]`,
    ),
    ...duplicates(
      config.remotes,
      (r) => r.id,
      (i) => `remotes[${i}]`,
    ),
    ...duplicates(
      config.jobs,
      (j) => j.id,
      (i) => `jobs[${i}]`,
    ),
  ];
  const pools = new Set(config.pools.map((p) => p.id));
  const remotes = new Set(config.remotes.map((r) => r.id));

  config.jobs.forEach((job, j) => {
    const at = `jobs[${j}]`;
    if (job.reports?.email.length && !config.smtp)
      problems.push({
        path: `${at}.reports.email`,
        message: 'reports by email need an smtp section in the config',
      });
    problems.push(
      ...duplicates(
        job.schedules,
        (s) => s.id,
        (i) => `${at}.schedules[${i}]`,
      ),
    );
    job.remotes.forEach((r, i) => {
      if (!remotes.has(r)) problems.push({ path: `${at}.remotes[${i}]`, message: `unknown remote "${r}"` });
    });
    job.vms.pools?.forEach((p, i) => {
      if (!pools.has(p)) problems.push({ path: `${at}.vms.pools[${i}]`, message: `unknown pool "${p}"` });
    });
    job.srs.forEach((t, i) => {
      if (!pools.has(t.pool))
        problems.push({ path: `${at}.srs[${i}].pool`, message: `unknown pool "${t.pool}"` });
    });
    if ((job.mode === 'full' || job.mode === 'delta') && job.remotes.length === 0 && job.srs.length === 0) {
      problems.push({
        path: `${at}.remotes`,
        message: `a ${job.mode} backup job needs at least one remote (or an SR in srs)`,
      });
    }
    if (job.mode === 'snapshot' && job.srs.length > 0) {
      problems.push({
        path: `${at}.srs`,
        message:
          'a snapshot job writes nowhere: use mode full (disaster recovery) or delta (continuous replication)',
      });
    }
    if (parseDuration(job.catchupWindow) === undefined) {
      problems.push({
        path: `${at}.catchupWindow`,
        message: `"${job.catchupWindow}" is not a duration like 1h or 30m`,
      });
    }
    for (const key of ['interval', 'maximum'] as const) {
      if (parseDuration(job.chainWait[key]) === undefined) {
        problems.push({
          path: `${at}.chainWait.${key}`,
          message: `"${job.chainWait[key]}" is not a duration like 5m`,
        });
      }
    }
    job.schedules.forEach((s, i) => {
      const sat = `${at}.schedules[${i}]`;
      if (job.mode === 'snapshot' && s.retention.snapshot < 1) {
        problems.push({
          path: `${sat}.retention.snapshot`,
          message: 'a snapshot job must keep at least 1 snapshot',
        });
      }
      if (job.mode !== 'snapshot' && job.srs.length > 0 && s.copyRetention < 1) {
        problems.push({
          path: `${sat}.copyRetention`,
          message: 'a job with SRs must keep at least 1 replica per SR (copyRetention)',
        });
      }
      if (!timezoneExists(s.timezone)) {
        problems.push({
          path: `${sat}.timezone`,
          message: `unknown time zone "${s.timezone}" (IANA names like Europe/Paris)`,
        });
      } else {
        const cron = cronProblem(s.cron, s.timezone);
        if (cron) problems.push({ path: `${sat}.cron`, message: cron });
      }
      if (s.healthCheck?.timeout && parseDuration(s.healthCheck.timeout) === undefined) {
        problems.push({
          path: `${sat}.healthCheck.timeout`,
          message: `"${s.healthCheck.timeout}" is not a duration`,
        });
      }
    });
  });
  return problems;
}
