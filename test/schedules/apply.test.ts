// `xcpb apply` against the real Temporal dev server, through the real command.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import YAML from 'yaml';
import { readOwnedSchedules } from '../../schedules/apply';
import { repoRoot, runXcpb } from '../helpers/cli';
import { eventually } from '../helpers/eventually';
import { temporalAddress, testClient } from '../helpers/temporal';

const exec = promisify(execFile);
let client: Client;
let dir: string;
let env: Record<string, string>;

// Visibility (list) lags behind writes: confirm the example's ids one by one as well.
const EXAMPLE_IDS = [
  'xcpb:dev-weekly:monthly-archive',
  'xcpb:dev-weekly:sunday',
  'xcpb:prod-nightly:nightly',
];
const ourSchedules = () => readOwnedSchedules(client, EXAMPLE_IDS);

async function ourScheduleIds(): Promise<string[]> {
  return (await ourSchedules()).map((s) => s.scheduleId);
}

async function writeConfig(name: string, mutate: (c: any) => void = () => {}): Promise<string> {
  const config = YAML.parse(await readFile(path.join(repoRoot, 'examples/config.yaml'), 'utf8'));
  mutate(config);
  const file = path.join(dir, name);
  await writeFile(file, YAML.stringify(config));
  return file;
}

async function deleteAllSchedules() {
  for (const s of await ourSchedules()) await client.schedule.getHandle(s.scheduleId).delete();
  for await (const s of client.schedule.list()) {
    await client.schedule
      .getHandle(s.scheduleId)
      .delete()
      .catch(() => {});
  }
}

beforeAll(async () => {
  client = await testClient();
  dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-apply-'));
  env = { TEMPORAL_ADDRESS: temporalAddress() };
});
afterAll(async () => {
  await deleteAllSchedules();
  await client.connection.close();
});
beforeEach(deleteAllSchedules);

describe('xcpb apply', () => {
  it('creates the schedules, then finds nothing to change; a cron change is one update', async () => {
    const file = await writeConfig('a.yaml');
    const first = await runXcpb(['apply', file], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('3 created');
    expect(await ourScheduleIds()).toEqual([
      'xcpb:dev-weekly:monthly-archive',
      'xcpb:dev-weekly:sunday',
      'xcpb:prod-nightly:nightly',
    ]);

    const second = await runXcpb(['apply', file], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^config a: no change/);

    const changed = await writeConfig('a.yaml', (c) => (c.jobs[0].schedules[0].cron = '15 2 * * *'));
    const third = await runXcpb(['apply', changed], env);
    expect(third.stdout).toContain('~ update xcpb:prod-nightly:nightly (definition changed)');
    expect(third.stdout).toContain('0 created, 1 updated, 0 deleted');
    const d = await client.schedule.getHandle('xcpb:prod-nightly:nightly').describe();
    expect(d.spec.calendars?.[0] ?? d.spec).toBeDefined();
    expect(JSON.stringify(d.spec)).toContain('Europe/Paris');
    const hours = d.spec.calendars?.[0]?.hour;
    expect(JSON.stringify(hours)).toContain('2');
  });

  it('sets SKIP overlap, the catch-up window, the paused state, workflow type and task queue', async () => {
    const file = await writeConfig('c.yaml');
    expect((await runXcpb(['apply', file], env)).code).toBe(0);
    const paused = await client.schedule.getHandle('xcpb:dev-weekly:monthly-archive').describe();
    expect(paused.state.paused).toBe(true);
    const d = await client.schedule.getHandle('xcpb:prod-nightly:nightly').describe();
    expect(d.state.paused).toBe(false);
    expect(d.policies.overlap).toBe('SKIP');
    expect(d.policies.catchupWindow).toBe(3_600_000);
    expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'backupJob', taskQueue: 'xcpb' });
    if (d.action.type !== 'startWorkflow') return;
    expect(d.action.args?.[0]).toMatchObject({
      scheduleId: 'nightly',
      job: { id: 'prod-nightly', mode: 'delta' },
    });
  });

  it('deletes the schedules of a removed job, and leaves a schedule made by hand alone', async () => {
    await client.schedule.create({
      scheduleId: 'hand-made',
      spec: { cronExpressions: ['0 0 * * *'] },
      action: { type: 'startWorkflow', workflowType: 'other', taskQueue: 'other', args: [] },
    });
    expect((await runXcpb(['apply', await writeConfig('d.yaml')], env)).code).toBe(0);
    const removed = await writeConfig('d.yaml', (c) => c.jobs.splice(1, 1));
    // Not on a terminal, deleting needs --yes: without it nothing changes.
    const refused = await runXcpb(['apply', removed], env);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('nothing changed: deleting schedules needs --yes');
    expect(await ourScheduleIds()).toEqual(EXAMPLE_IDS);
    const result = await runXcpb(['apply', removed, '--yes'], env);
    expect(result.stdout).toContain('- delete xcpb:dev-weekly:sunday (config d)');
    expect(result.stdout).toContain('0 created, 0 updated, 2 deleted');
    expect(await ourScheduleIds()).toEqual(['xcpb:prod-nightly:nightly']);
    await client.schedule.getHandle('hand-made').describe();

    // What `temporal schedule list` shows is exactly the same set.
    await eventually(async () => {
      const { stdout } = await exec(inject('temporalCli'), [
        'schedule',
        'list',
        '--address',
        temporalAddress(),
        '-o',
        'json',
      ]);
      const listed = (JSON.parse(stdout) as { scheduleId: string }[]).map((s) => s.scheduleId).sort();
      expect(listed).toEqual(['hand-made', 'xcpb:prod-nightly:nightly']);
    });
  });

  it("an apply of a second config leaves the first config's schedules alone; --prune deletes them", async () => {
    expect((await runXcpb(['apply', await writeConfig('first.yaml')], env)).code).toBe(0);
    const second = await writeConfig('second.yaml', (c) => {
      c.jobs = [{ ...c.jobs[0], id: 'other-nightly' }];
    });
    const result = await runXcpb(['apply', second], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('config second:');
    expect(result.stdout).toContain('3 schedules of other configs left alone (--prune deletes them)');
    expect(result.stdout).toContain('1 created, 0 updated, 0 deleted');
    const ids = await readOwnedSchedules(client, [...EXAMPLE_IDS, 'xcpb:other-nightly:nightly']);
    expect(ids.map((s) => [s.scheduleId, s.configName])).toEqual([
      ['xcpb:dev-weekly:monthly-archive', 'first'],
      ['xcpb:dev-weekly:sunday', 'first'],
      ['xcpb:other-nightly:nightly', 'second'],
      ['xcpb:prod-nightly:nightly', 'first'],
    ]);
    // Applying the first again changes nothing of the second's.
    const again = await runXcpb(['apply', await writeConfig('first.yaml')], env);
    expect(again.stdout).toContain('no change (3 schedules up to date)');

    const pruned = await runXcpb(['apply', second, '--prune', '--yes'], env);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toContain('- delete xcpb:prod-nightly:nightly (config first)');
    expect(pruned.stdout).toContain('0 created, 0 updated, 3 deleted');
    const left = await readOwnedSchedules(client, [...EXAMPLE_IDS, 'xcpb:other-nightly:nightly']);
    expect(left.map((s) => s.scheduleId)).toEqual(['xcpb:other-nightly:nightly']);
  });

  it('--dry-run prints the diff and changes nothing', async () => {
    const result = await runXcpb(['apply', await writeConfig('f.yaml'), '--dry-run'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('+ create xcpb:prod-nightly:nightly');
    expect(result.stdout).toContain('dry run: nothing changed');
    expect(await ourScheduleIds()).toEqual([]);
  });

  it.each([
    ['unknown mode', (c: any) => (c.jobs[0].mode = 'incremental'), 'jobs[0].mode'],
    [
      'unparseable cron',
      (c: any) => (c.jobs[0].schedules[0].cron = 'every night'),
      'jobs[0].schedules[0].cron',
    ],
    [
      'unknown timezone',
      (c: any) => (c.jobs[0].schedules[0].timezone = 'Europe/Atlantis'),
      'jobs[0].schedules[0].timezone',
    ],
    ['unknown remote', (c: any) => (c.jobs[0].remotes = ['tape']), 'jobs[0].remotes[0]'],
    ['unknown pool', (c: any) => (c.jobs[0].vms.pools = ['nope']), 'jobs[0].vms.pools[0]'],
    ['duplicate job ids', (c: any) => (c.jobs[1].id = c.jobs[0].id), 'jobs[1].id'],
    ['duplicate schedule ids', (c: any) => (c.jobs[1].schedules[1].id = 'sunday'), 'jobs[1].schedules[1].id'],
    ['plain-text password', (c: any) => (c.pools[0].password = 'hunter2'), 'pools[0].password'],
    ['negative concurrency', (c: any) => (c.jobs[0].concurrency = -2), 'jobs[0].concurrency'],
  ])('a config with %s exits 2, names the field, and changes no schedule', async (_name, mutate, field) => {
    expect((await runXcpb(['apply', await writeConfig('good.yaml')], env)).code).toBe(0);
    const before = await ourSchedules();
    const result = await runXcpb(['apply', await writeConfig('bad.yaml', mutate)], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${field}:`);
    expect(result.stderr).toContain('nothing changed');
    expect(await ourSchedules()).toEqual(before);
  });

  it('a YAML syntax error or a missing file exits 2 with the reason', async () => {
    const broken = path.join(dir, 'broken.yaml');
    await writeFile(broken, 'pools:\n  - id: [oops\n');
    const syntax = await runXcpb(['apply', broken], env);
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toMatch(/line \d+, column \d+/);
    const missing = await runXcpb(['config', 'validate', path.join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('file does not exist');
    expect(await ourScheduleIds()).toEqual([]);
  });

  it('puts no secret value in any schedule action', async () => {
    const secretValue = 'sup3r-s3cret-pool-password';
    const secretFile = path.join(dir, 'pool.secret');
    await writeFile(secretFile, secretValue);
    const file = await writeConfig('secret.yaml', (c) => (c.pools[0].password = { file: secretFile }));
    expect((await runXcpb(['apply', file], { ...env, XCPB_DEMO_PASSWORD: secretValue })).code).toBe(0);
    for (const id of await ourScheduleIds()) {
      const d = await client.schedule.getHandle(id).describe();
      const text = JSON.stringify(d);
      expect(text).not.toContain(secretValue);
      expect(text).not.toContain('password');
    }
  });
});
