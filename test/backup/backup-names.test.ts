// Backup names (`<ts>`) have one-second precision: two backups of a VM taken within one second must
// still get distinct, increasing names, later than the newest backup on the targets, or a delta would
// overwrite (and point at) its own parent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVmActivities } from '../../activities/vm-activities';
import { type SimPools, startSimPools } from '../helpers/sim-pools';

let lab: SimPools;

beforeAll(async () => {
  lab = await startSimPools({
    pools: [
      {
        id: 'lab',
        credentials: [{ username: 'root', password: 'names-pw' }],
        srs: [{ id: 'local', name: 'Local', size: '1GiB', default: true }],
        vms: [{ name: 'quick', power: 'Running', disks: [{ name: 'q root', size: '2MiB' }] }],
      },
    ],
  });
});
afterAll(() => lab?.close());

describe('backup names', () => {
  it('snapshots taken back to back get strictly increasing <ts>, after the newest backup on the targets', async () => {
    const acts = createVmActivities(lab.pools);
    const xapi = await lab.pools.client('lab');
    const vms = await xapi.getAllRecords<{ uuid: string; name_label: string; is_a_snapshot: boolean }>('VM');
    const vmUuid = Object.values(vms).find((v) => v.name_label === 'quick' && !v.is_a_snapshot)!.uuid;
    const take = (runId: string, after?: string) =>
      acts.takeSnapshot({
        poolId: 'lab',
        vmUuid,
        jobId: 'j',
        runId,
        mode: 'normal',
        ignoreVdiUuids: [],
        after,
      });

    const future = '20991231T235958Z'; // a backup on a remote named in the future (clock skew)
    const first = await take('run-1', future);
    const second = await take('run-2');
    const third = await take('run-3');
    expect(first.datetime).toBe('20991231T235959Z');
    expect(second.datetime > first.datetime).toBe(true);
    expect(third.datetime > second.datetime).toBe(true);
    // A retried attempt of a run finds its snapshot and keeps its name.
    expect((await take('run-2')).datetime).toBe(second.datetime);
  });
});
