// Selection at run time, end to end: an empty selection ends the run as skipped with the reason; an
// explicit list names a VM no pool has as a failure while the others are backed up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';

let stack: BackupStack;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'sel-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '1GiB', default: true }],
          vms: [
            { name: 'one', tags: ['x'], power: 'Halted', disks: [{ name: 'one root', size: '2MiB' }] },
            { name: 'two', tags: ['x'], power: 'Running', disks: [{ name: 'two root', size: '2MiB' }] },
          ],
        },
      ],
    },
    jobs: [
      {
        id: 'nobody',
        mode: 'delta',
        vms: { tags: ['missing-tag'] },
        remotes: ['nas'],
        schedules: [{ id: 's', cron: '0 1 * * *', retention: { remote: 1 } }],
      },
      {
        id: 'running-only',
        mode: 'delta',
        vms: { tags: ['x'], powerState: 'running' },
        remotes: ['nas'],
        schedules: [{ id: 's', cron: '0 1 * * *', retention: { remote: 1 } }],
      },
    ],
  });
});
afterAll(() => stack?.close());

describe('selection at run time', () => {
  it('no VM matches: the run is skipped with the reason', async () => {
    const report = await stack.runJob('nobody');
    expect(report.status).toBe('skipped');
    expect(report.vms).toEqual([]);
    expect(report.reason).toMatch(/no VM matches the job's selection \(2 excluded\)/);
  });

  it('power state is evaluated when the run starts', async () => {
    const first = await stack.runJob('running-only');
    expect(first.vms.map((v) => v.vmName)).toEqual(['two']);
    const xapi = await stack.xapi();
    await xapi.callAsync(
      'VM.start',
      await xapi.call('VM.get_by_uuid', (await stack.vm('one')).uuid),
      false,
      false,
    );
    await xapi.logout();
    const second = await stack.runJob('running-only');
    expect(second.vms.map((v) => v.vmName).sort()).toEqual(['one', 'two']);
    expect(second.status).toBe('success');
  });

  it('an explicit VM list: a VM in no pool is a failure of the run, the others are backed up', async () => {
    const one = await stack.vm('one');
    const job = {
      ...stack.config.jobs[0],
      id: 'explicit',
      vms: { uuids: [one.uuid, '00000000-0000-4000-8000-000000000000'], powerState: 'any' as const },
    };
    stack.config.jobs.push(job);
    const report = await stack.runJob('explicit');
    expect(report.status).toBe('failure');
    expect(report.vms.find((v) => v.vmName === 'one')?.status).toBe('success');
    expect(report.vms.find((v) => v.error?.code === 'VM_NOT_FOUND')?.error?.message).toContain(
      '00000000-0000-4000-8000-000000000000',
    );
  });
});
