// Per-pool concurrency (seed: 2 snapshots, 12 disk exports at once per pool) and the job's VM
// window, proven with the simulator's own counters of what ran at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../core/run-report';
import type { SimStats } from '../../simulator';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';

let stack: BackupStack;

const vms = (prefix: string, n: number, ...tags: string[]) =>
  Array.from({ length: n }, (_, i) => ({
    name: `${prefix}-${String(i).padStart(2, '0')}`,
    tags,
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
        // 'exp': 14 VMs a pool, enough to fill 12 export slots; 'many': 60 VMs in all.
        pool('p1', [...vms('a', 14, 'many', 'exp'), ...vms('c', 6, 'many'), ...vms('w', 6, 'window')]),
        pool('p2', [...vms('b', 14, 'many', 'exp'), ...vms('d', 26, 'many')]),
      ],
    },
    jobs: [
      {
        id: 'exports',
        mode: 'delta',
        concurrency: 0,
        vms: { tags: ['exp'] },
        remotes: ['nas'],
        schedules: [{ id: 's', cron: '0 1 * * *', retention: { remote: 2 } }],
      },
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
    [Date.parse(v.start), 1],
    [Date.parse(v.end ?? v.start), -1],
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
  // Each limit is reached in its own run, where it is the bottleneck: whether two limits are both
  // reached in one run depends on the machine's speed. Both runs check neither is ever passed.
  async function runMeasured(
    jobId: string,
    setup: { snapshotDelayMs: number; exportBytesPerSecond: number },
  ) {
    for (const p of stack.sim.pools) {
      await p.control.resetStats();
      await p.control.delay('VM.snapshot', setup.snapshotDelayMs);
      await p.control.throttle({ bytesPerSecond: setup.exportBytesPerSecond });
    }
    const report = await stack.runJob(jobId);
    const stats = new Map<string, SimStats>();
    for (const p of stack.sim.pools) {
      stats.set(p.id, await p.control.stats());
      await p.control.clearFaults();
      await p.control.delay('VM.snapshot', 0);
    }
    const failed = report.vms.filter((v) => v.status !== 'success');
    expect(report.status, JSON.stringify(failed, null, 1)).toBe('success');
    for (const [id, { maxConcurrent }] of stats) {
      expect(maxConcurrent.snapshot, id).toBeLessThanOrEqual(2);
      expect(maxConcurrent.export_raw_vdi, id).toBeLessThanOrEqual(12);
    }
    return { report, stats };
  }

  it('12 disk exports at once per pool at most, and reached (exports slow, snapshots instant)', async () => {
    const { report, stats } = await runMeasured('exports', {
      snapshotDelayMs: 0,
      exportBytesPerSecond: 256 << 10,
    });
    expect(report.vms).toHaveLength(28);
    for (const [id, { maxConcurrent }] of stats) expect(maxConcurrent.export_raw_vdi, id).toBe(12);
  });

  it('2 snapshots at once per pool at most, and reached (snapshots slow); a 60-VM run', async () => {
    const { report, stats } = await runMeasured('all-at-once', {
      snapshotDelayMs: 600,
      exportBytesPerSecond: 0,
    });
    // 60 VMs: their uuids no longer fit one search attribute value (2 KiB); the run must not care.
    expect(report.vms).toHaveLength(60);
    for (const [id, { maxConcurrent }] of stats) expect(maxConcurrent.snapshot, id).toBe(2);
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
