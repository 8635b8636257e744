// The progress bar line of `xcpb run` / `xcpb restore`: percentage, sizes, rate and ETA once the
// total is known; bytes and rate alone before.
import { describe, expect, it } from 'vitest';
import { formatBar, vmProgress } from '../../cli/progress-bars';
import type { VmReport } from '../../core/run-report';

/** A report time (ISO 8601) from epoch milliseconds. */
const at = (ms: number) => new Date(ms).toISOString();

const MiB = 1024 * 1024;

describe('progress bars', () => {
  it('a transfer with a known total: percentage, sizes, rate and ETA', () => {
    const line = formatBar(
      { name: 'db', bytes: 60 * MiB, total: 100 * MiB, start: 0, doing: 'export' },
      6_000,
      10,
    );
    expect(line).toBe('[██████░░░░]  60% 60.0 MiB/100.0 MiB  10.0 MiB/s  ETA 4.0 s  export');
  });

  it('an unknown total: no percentage, no ETA, still bytes and rate', () => {
    const line = formatBar({ name: 'db', bytes: 3 * MiB, start: 0, doing: 'export xva' }, 2_000, 10);
    expect(line).toBe('[··········]   -% 3.0 MiB  1.5 MiB/s  export xva');
  });

  it("a VM's bar sums its exports; the total is known once every running export knows its own", () => {
    const vm: VmReport = {
      vmUuid: 'u',
      vmName: 'db-prod-01',
      poolId: 'lab',
      workflowId: 'w',
      status: 'running',
      start: at(0),
      steps: [
        { name: 'snapshot', status: 'success', start: at(0), end: at(1_000) },
        {
          name: 'export',
          target: 'root',
          status: 'success',
          start: at(1_000),
          end: at(2_000),
          bytes: 10 * MiB,
        },
        {
          name: 'export',
          target: 'data',
          status: 'running',
          start: at(1_000),
          bytes: 5 * MiB,
          total: 20 * MiB,
        },
      ],
    };
    expect(vmProgress(vm)).toMatchObject({
      bytes: 15 * MiB,
      total: 30 * MiB,
      start: 1_000,
      doing: 'export data',
    });
    delete vm.steps[2].total;
    expect(vmProgress(vm).total).toBeUndefined();
  });
});
