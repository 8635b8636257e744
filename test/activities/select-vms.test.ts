// The selection activity pages through one listing per run: a job's first page lists the pool's VMs
// (VM.get_all_records), its later pages page through that listing instead of listing every VM again
// (~10 s a page at 10,000 VMs); the next run's first page lists anew. Against the simulator over
// real HTTP, its call counts the witness.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVmActivities } from '../../activities/vm-activities';
import { labScenario, labVm } from '../helpers/scenarios';
import { type SimPools, startSimPools } from '../helpers/sim-pools';

let lab: SimPools;

beforeAll(async () => {
  lab = await startSimPools(
    labScenario({
      password: 'select-pw',
      srSize: '1GiB',
      vms: ['a', 'b', 'c', 'd', 'e'].map((name) =>
        labVm(name, { tags: ['prod'], disks: [{ size: '2MiB' }] }),
      ),
    }),
  );
});
afterAll(() => lab?.close());

const listings = async () => (await lab.sim.pools[0].control.stats()).calls['VM.get_all_records'] ?? 0;

describe('selectVms', () => {
  it("pages through the first page's listing; the next run lists anew", async () => {
    const acts = createVmActivities(lab.pools);
    const vms = { tags: ['prod'], powerState: 'any' as const };
    const before = await listings();
    const pages: string[][] = [];
    const cursors: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await acts.selectVms({ vms, after, limit: 2 });
      pages.push(page.selected.map((v) => v.name));
      if (page.next) cursors.push(page.next);
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(pages.flat().sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(await listings(), 'one listing for the three pages').toBe(before + 1);
    await acts.selectVms({ vms, limit: 2 });
    expect(await listings(), "the next run's first page lists anew").toBe(before + 2);
    await acts.selectVms({ vms: { tags: ['other'], powerState: 'any' }, after: cursors[0], limit: 2 });
    expect(await listings(), 'another selection has a listing of its own').toBe(before + 3);
  });
});
