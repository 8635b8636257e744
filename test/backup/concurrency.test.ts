// Per-pool concurrency (seed: 2 snapshots, 12 disk exports at once per pool) and the job's VM
// window, proven with the simulator's own counters of what ran at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../core/run-report';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';

let stack: BackupStack;

const vms = (prefix: string, n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => ({
    name: `${prefix}-${String(i).padStart(2, '0')}`,
    tags: [tag],
    power: 'Running' as const,
    disks: [
      {
        name: `${prefix}-${i} root`,
        size: '2MiB',
        content: { type: 'random' as const, seed: i + 1, blocks: 1 },
      },
    ],
  }));
const pool = (id: string, list: ReturnType<typeof vms>) => ({
  id,
  credentials: [{ username: 'root', password: 'conc-pw' }],
  srs: [{ id: 'local', name: 'Local', size: '4GiB', default: true }],
  vms: list,
});

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        pool('p1', [...vms('a', 20, 'many'), ...vms('w', 6, 'window')]),
        pool('p2', vms('b', 40, 'many')),
      ],
    },
    jobs: [
      {
        id: 'all-at-once',
        mode: 'delta',
        concurrency: 0,
        vms: { tags: ['many'] },
        remotes: ['nas'],
        schedules: [{ id: 's', cron: '0 1 * * *', retention: { remote: 2 } }],
      },
      {
        id: 'three',
        mode: 'delta',
        concurrency: 3,
        vms: { tags: ['window'] },
        remotes: ['nas'],
        schedules: [{ id: 's', cron: '0 1 * * *', retention: { remote: 2 } }],
      },
    ],
  });
});
afterAll(() => stack?.close());

/** The most VMs whose [start, end] intervals overlap, from the run report. */
function maxVmsInFlight(report: RunReport): number {
  const events = report.vms.flatMap((v) => [
    [v.start, 1],
    [v.end ?? v.start, -1],
  ]);
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let current = 0;
  let max = 0;
  for (const [, delta] of events) {
    current += delta;
    max = Math.max(max, current);
  }
  return max;
}

describe('concurrency', () => {
  it('never more than 2 snapshots or 12 disk exports at once per pool, and both limits are reached', async () => {
    for (const p of stack.sim.pools) {
      await p.control.resetStats();
      await p.control.delay('VM.snapshot', 600); // long enough that snapshots overlap even on a loaded machine
      await p.control.throttle({ bytesPerSecond: 512 << 10 }); // each export lasts ~4 s
    }
    const report = await stack.runJob('all-at-once');
    expect(
      report.status,
      JSON.stringify(
        report.vms.filter((v) => v.status !== 'success'),
        null,
        1,
      ),
    ).toBe('success');
    // 60 VMs: their uuids no longer fit one search attribute value (2 KiB); the run must not care.
    expect(report.vms).toHaveLength(60);
    for (const p of stack.sim.pools) {
      const { maxConcurrent } = await p.control.stats();
      expect(maxConcurrent.snapshot, p.id).toBe(2);
      expect(maxConcurrent.export_raw_vdi, p.id).toBe(12);
      await p.control.clearFaults();
      await p.control.delay('VM.snapshot', 0);
    }
  });

  it('a job with concurrency 3 never has more than 3 VMs in flight, and does have 3', async () => {
    await stack.pool('p1').control.delay('VM.snapshot', 300);
    const report = await stack.runJob('three');
    await stack.pool('p1').control.delay('VM.snapshot', 0);
    expect(report.status).toBe('success');
    expect(report.vms).toHaveLength(6);
    expect(maxVmsInFlight(report)).toBe(3);
  });
});
