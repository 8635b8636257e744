import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigText, validateConfig } from '../../core/config/validate';
import { repoRoot } from '../helpers/cli';

const base = () => ({
  pools: [{ id: 'lab', url: 'https://xcp.example', username: 'root', password: { env: 'XCP_LAB_PASSWORD' } }],
  remotes: [{ id: 'nas', url: 'file:///srv/backups' }],
  jobs: [
    {
      id: 'nightly',
      mode: 'delta',
      vms: { pools: ['lab'], tags: ['prod'] },
      remotes: ['nas'],
      schedules: [{ id: 's1', cron: '0 3 * * *', timezone: 'Europe/Paris', retention: { remote: 7 } }],
    },
  ],
});

function problemsOf(mutate: (c: any) => void) {
  const c = base();
  mutate(c);
  const result = validateConfig(c);
  expect(result.ok).toBe(false);
  return result.ok ? [] : result.problems;
}

describe('configuration', () => {
  it('accepts a good config and fills the defaults of the seed', () => {
    const result = validateConfig(base());
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.pools[0].concurrency).toEqual({
      snapshot: 2,
      diskExport: 12,
      vmExport: 2,
      import: 2,
    });
    expect(result.config.jobs[0].schedules[0].enabled).toBe(true);
    expect(result.config.jobs[0].concurrency).toBe(2);
  });

  it('accepts replication jobs: SRs of any configured pool, with or without remotes', () => {
    const c: any = base();
    c.pools.push({ ...c.pools[0], id: 'dr-site', url: 'https://dr.example' });
    c.jobs[0].remotes = [];
    c.jobs[0].srs = [{ pool: 'dr-site', sr: 'Local storage' }];
    c.jobs[0].schedules[0].copyRetention = 3;
    const result = validateConfig(c);
    expect(result).toMatchObject({ ok: true });
    if (result.ok) expect(result.config.jobs[0].srs).toEqual([{ pool: 'dr-site', sr: 'Local storage' }]);
  });

  it.each(['config.yaml', 'replication.yaml'])('accepts examples/%s', async (file) => {
    const result = parseConfigText(await readFile(path.join(repoRoot, 'examples', file), 'utf8'));
    expect(result).toMatchObject({ ok: true });
  });

  it.each([
    ['unknown mode', (c: any) => (c.jobs[0].mode = 'incremental'), 'jobs[0].mode', /snapshot.*full.*delta/],
    [
      'unparseable cron',
      (c: any) => (c.jobs[0].schedules[0].cron = '61 * * * *'),
      'jobs[0].schedules[0].cron',
      /61/,
    ],
    [
      'cron with 6 fields',
      (c: any) => (c.jobs[0].schedules[0].cron = '0 0 3 * * *'),
      'jobs[0].schedules[0].cron',
      /5 fields/,
    ],
    [
      'unknown timezone',
      (c: any) => (c.jobs[0].schedules[0].timezone = 'Mars/Olympus'),
      'jobs[0].schedules[0].timezone',
      /Mars\/Olympus/,
    ],
    [
      'unknown remote',
      (c: any) => (c.jobs[0].remotes = ['tape']),
      'jobs[0].remotes[0]',
      /unknown remote "tape"/,
    ],
    [
      'unknown pool',
      (c: any) => (c.jobs[0].vms.pools = ['prod']),
      'jobs[0].vms.pools[0]',
      /unknown pool "prod"/,
    ],
    ['duplicate job ids', (c: any) => c.jobs.push({ ...c.jobs[0] }), 'jobs[1].id', /duplicate id "nightly"/],
    [
      'duplicate schedule ids',
      (c: any) => c.jobs[0].schedules.push({ id: 's1', cron: '0 4 * * *' }),
      'jobs[0].schedules[1].id',
      /duplicate id "s1"/,
    ],
    [
      'plain-text password',
      (c: any) => (c.pools[0].password = 'hunter2'),
      'pools[0].password',
      /\{ env: .*\{ file: /,
    ],
    [
      'negative concurrency',
      (c: any) => (c.jobs[0].concurrency = -1),
      'jobs[0].concurrency',
      />=0|greater|too small/i,
    ],
    [
      'delta job without remote',
      (c: any) => (c.jobs[0].remotes = []),
      'jobs[0].remotes',
      /at least one remote/,
    ],
    [
      'the old replication spelling',
      (c: any) => (c.jobs[0].mode = 'replication'),
      'jobs[0].mode',
      /mode: delta with srs: \[\{ pool, sr \}\]/,
    ],
    [
      'the old disaster-recovery spelling',
      (c: any) => (c.jobs[0].mode = 'disaster-recovery'),
      'jobs[0].mode',
      /mode: full with srs: \[\{ pool, sr \}\]/,
    ],
    [
      'an SR on an unknown pool',
      (c: any) => (c.jobs[0].srs = [{ pool: 'nowhere', sr: 'Local' }]),
      'jobs[0].srs[0].pool',
      /unknown pool "nowhere"/,
    ],
    [
      'SRs without a replica retention',
      (c: any) => {
        c.jobs[0].srs = [{ pool: c.pools[0].id, sr: 'Local' }];
        c.jobs[0].schedules[0].retention = { remote: 2 };
      },
      'jobs[0].schedules[0].copyRetention',
      /at least 1 replica/,
    ],
    [
      "retention.replica (the replicas kept are XO's copyRetention)",
      (c: any) => {
        c.jobs[0].srs = [{ pool: c.pools[0].id, sr: 'Local' }];
        c.jobs[0].schedules[0].retention = { remote: 2, replica: 3 };
      },
      'jobs[0].schedules[0].retention',
      /retention\.replica is now written copyRetention: <n>, beside retention on the schedule/,
    ],
    ['unknown field', (c: any) => (c.jobs[0].retention = 3), 'jobs[0]', /retention/],
  ])('rejects %s, naming the field', (_name, mutate, field, message) => {
    const problems = problemsOf(mutate);
    const problem = problems.find((p) => p.path === field);
    expect(problem, JSON.stringify(problems)).toBeDefined();
    expect(`${problem?.message} ${JSON.stringify(problems)}`).toMatch(message);
  });

  it('never echoes the value of a plain-text password', () => {
    const problems = problemsOf((c) => (c.pools[0].password = 'hunter2-value'));
    expect(JSON.stringify(problems)).not.toContain('hunter2-value');
  });

  it('gives line and column of a YAML syntax error', () => {
    const result = parseConfigText('jobs:\n  - id: x\n    mode: [\n');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems[0].message).toMatch(/line \d+, column \d+/);
  });

  it('reports every problem, not just the first', () => {
    const problems = problemsOf((c) => {
      c.jobs[0].mode = 'nope';
      c.pools[0].password = 'x';
    });
    expect(problems.map((p) => p.path).sort()).toEqual(['jobs[0].mode', 'pools[0].password']);
  });
});
