import { describe, expect, it } from 'vitest';
import type { Config } from '../../core/config/schema';
import { validateConfig } from '../../core/config/validate';
import { configNameFor, desiredSchedules, planSchedules } from '../../schedules/plan';

function config(cron = '0 3 * * *', enabled = true): Config {
  const result = validateConfig({
    pools: [{ id: 'lab', url: 'https://x', username: 'root', password: { env: 'P' } }],
    remotes: [{ id: 'nas', url: 'file:///b' }],
    jobs: [
      { id: 'a', mode: 'delta', vms: {}, remotes: ['nas'], schedules: [{ id: 'n', cron, enabled }] },
      { id: 'b', mode: 'full', vms: {}, remotes: ['nas'], schedules: [{ id: 'w', cron: '0 1 * * 0' }] },
    ],
  });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.config;
}

describe('schedule plan', () => {
  it('creates every schedule of an empty namespace, with the xcpb:<job>:<schedule> ids', () => {
    const plan = planSchedules(desiredSchedules(config()), []);
    expect(plan.create.map((d) => d.scheduleId)).toEqual(['xcpb:a:n', 'xcpb:b:w']);
  });

  it('plans nothing when the existing schedules carry the same hash and pause state', () => {
    const desired = desiredSchedules(config());
    const plan = planSchedules(
      desired,
      desired.map((d) => ({ scheduleId: d.scheduleId, hash: d.hash, paused: d.paused })),
    );
    expect(plan.unchanged).toHaveLength(2);
    expect(plan.create.length + plan.update.length + plan.remove.length).toBe(0);
  });

  it('updates only the schedule whose cron changed, and says why', () => {
    const before = desiredSchedules(config());
    const existing = before.map((d) => ({ scheduleId: d.scheduleId, hash: d.hash, paused: d.paused }));
    const plan = planSchedules(desiredSchedules(config('0 4 * * *')), existing);
    expect(plan.update.map((u) => [u.desired.scheduleId, u.reasons])).toEqual([
      ['xcpb:a:n', ['definition changed']],
    ]);
  });

  it('pauses a schedule disabled in the file without calling it a definition change', () => {
    const before = desiredSchedules(config());
    const existing = before.map((d) => ({ scheduleId: d.scheduleId, hash: d.hash, paused: d.paused }));
    const plan = planSchedules(desiredSchedules(config('0 3 * * *', false)), existing);
    expect(plan.update.map((u) => u.reasons)).toEqual([['pause']]);
  });

  it("removes this config's schedules that left the file and never touches others", () => {
    const existing = [
      { scheduleId: 'xcpb:gone:x', paused: false, configName: 'default' },
      { scheduleId: 'xcpb:theirs:x', paused: false, configName: 'other' },
      { scheduleId: 'xcpb:unnamed:x', paused: false },
      { scheduleId: 'someone-elses', paused: false },
    ];
    const plan = planSchedules(desiredSchedules(config()), existing);
    expect(plan.remove.map((e) => e.scheduleId)).toEqual(['xcpb:gone:x']);
    expect(plan.others.map((e) => e.scheduleId)).toEqual(['xcpb:theirs:x', 'xcpb:unnamed:x']);
    const pruned = planSchedules(desiredSchedules(config()), existing, { prune: true });
    expect(pruned.remove.map((e) => e.scheduleId)).toEqual([
      'xcpb:gone:x',
      'xcpb:theirs:x',
      'xcpb:unnamed:x',
    ]);
  });

  it("records the config's name: its file name, unless the config names itself", () => {
    expect(configNameFor({}, '/etc/xcpb/prod.yaml')).toBe('prod');
    expect(configNameFor({ name: 'lab' }, '/etc/xcpb/prod.yaml')).toBe('lab');
    expect(desiredSchedules(config(), 'prod').every((d) => d.configName === 'prod')).toBe(true);
  });
});
