// The target pool's `import` slots bound the replica imports into it, although the bytes stream from
// the source pool's export activities: with one import slot, two VMs replicated at once (job
// concurrency 2) into one SR never import at the same time, as the target pool's simulator counts
// them; both replicas are still made. CR (raw VDI imports) and DR (XVA imports).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pretty } from '../durability/checks';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { expectNoLeftovers, replicasOf, vmReport } from './helpers';

let stack: BackupStack;
const PW = 'import-slots-pw';
const disk = (seed: number) => ({
  name: `disk ${seed}`,
  size: '8MiB',
  content: { type: 'random' as const, seed, blocks: 4 },
});
const vm = (name: string, tag: string, seed: number) => ({
  name,
  tags: [tag],
  power: 'Halted' as const,
  disks: [disk(seed)],
});

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'main',
          credentials: [{ username: 'root', password: PW }],
          srs: [{ id: 'local', name: 'Local', size: '1GiB', default: true }],
          vms: [vm('cr-a', 'cr', 1), vm('cr-b', 'cr', 2), vm('dr-a', 'dr', 3), vm('dr-b', 'dr', 4)],
        },
        {
          id: 'dr',
          credentials: [{ username: 'root', password: PW }],
          srs: [{ id: 'replicas', name: 'Replicas', size: '1GiB', default: true }],
        },
      ],
    },
    poolConcurrency: { import: 1 },
    jobs: ['cr', 'dr'].map((id) => ({
      id,
      mode: id === 'cr' ? 'delta' : 'full',
      concurrency: 2,
      vms: { pools: ['main'], tags: [id] },
      srs: [{ pool: 'dr', sr: 'Replicas' }],
      schedules: [{ id: 's', cron: '0 1 * * *', copyRetention: 1 }],
    })),
  });
  // Exports of a few seconds each: two VMs' transfers would overlap without the slot.
  await stack.pool('main').control.throttle({ bytesPerSecond: 4 << 20 });
}, 120_000);

afterAll(async () => {
  await stack?.close();
}, 60_000);

describe('import slots (1 on the target pool), two VMs replicated at once', () => {
  it.each([
    ['cr', 'import_raw_vdi'],
    ['dr', 'import'],
  ] as const)('%s: one import at a time, both replicas made', async (job, kind) => {
    const target = stack.pool('dr').control;
    await target.resetStats();
    const report = await stack.runJob(job);
    for (const name of [`${job}-a`, `${job}-b`])
      expect(vmReport(report, name).status, pretty(report)).toBe('success');
    const stats = await target.stats();
    expect(stats.maxConcurrent[kind]).toBe(1);
    // Nothing else imported meanwhile: the two VMs' imports were the only ones.
    expect(stats.maxConcurrent.import_raw_vdi + stats.maxConcurrent.import).toBe(1);
    for (const name of [`${job}-a`, `${job}-b`]) {
      const source = await stack.vm(name, 'main');
      expect(
        (await replicasOf(stack, 'dr', source.uuid, job)).map((r) => !!r.vm.other_config['xo:backup:sr']),
      ).toEqual([true]);
      await expectNoLeftovers(stack, 'dr', source.uuid);
    }
  });
});
