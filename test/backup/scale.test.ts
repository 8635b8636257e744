// A job's history and payloads stay bounded whatever its size (issue 14): 300 VMs whose reports are
// at their largest realistic size — four disks each (one [NOBAK]), two remotes, long names, and half
// of them failing with a long XAPI error — run in batches of child workflows. Every workflow of the
// run is read back with fetchHistory: no history passes 2,000 events, no payload 512 KB; the full
// report (well past 512 KB) is stored beside the backups and read whole by the typed client and
// `xcpb runs show`.
import type { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReportOf, runResultOf } from '../../client/run-result';
import { FAILED_NAMED, type RunProgress, type RunResult } from '../../core/run-report';
import { runReportPaths } from '../../remotes/backup-paths';
import type { BatchProgress } from '../../workflows/backup-batch';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { runXcpb } from '../helpers/cli';
import { temporalAddress } from '../helpers/temporal';

const VMS = 300;
// Half of them fail at their snapshot with a long XAPI error: a report as big as a successful one's,
// for a third of the activities (the test stays a few minutes on two cores).
const FAILING = 150;
const PAYLOAD_LIMIT = 512 * 1024;
const HISTORY_LIMIT = 2_000;
/** A progress answer names at most 20 failed VMs and a batch's running VMs: tens of KB at most. */
const PROGRESS_LIMIT = 128 * 1024;
/** What an XAPI error can carry: a storage backend's whole stderr, for instance. */
const LONG_PARAM = `lvcreate failed: ${'Volume group "VG_XenStorage-0f3c" has insufficient free space; '.repeat(16)}`;

// Names as people write them, long: they are in every step's target and every summary.
const name = (i: number) =>
  `scale-${String(i).padStart(3, '0')}-production-database-replica-eu-west-3b-tenant-acme`;

let stack: BackupStack;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'big',
          credentials: [{ username: 'root', password: 'scale-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '64GiB', default: true }],
          vms: Array.from({ length: VMS }, (_, i) => ({
            name: name(i),
            power: 'Running' as const,
            disks: [
              { name: `${name(i)} system disk (xvda)`, size: '1MiB' },
              { name: `${name(i)} database files (xvdb)`, size: '1MiB' },
              { name: `${name(i)} write-ahead log (xvdc)`, size: '1MiB' },
              { name: `${name(i)} scratch [NOBAK]`, size: '1MiB' },
            ],
          })),
        },
      ],
    },
    remotes: ['nas', 'offsite'],
    poolConcurrency: { snapshot: 8, diskExport: 24 },
    jobs: [
      {
        id: 'scale',
        mode: 'delta',
        concurrency: 24,
        vms: { pools: ['big'] },
        remotes: ['nas', 'offsite'],
        schedules: [{ id: 's', cron: '0 1 * * *', retention: { remote: 2 } }],
      },
    ],
  });
}, 600_000);
afterAll(() => stack?.close());

/** Every payload in a history event (any depth): its data and metadata bytes. */
function payloadSizes(value: unknown, out: number[] = []): number[] {
  if (value === null || typeof value !== 'object') return out;
  if (value instanceof Uint8Array) return out;
  const v = value as Record<string, unknown>;
  if (v.data instanceof Uint8Array && 'metadata' in v) {
    const metadata = Object.entries((v.metadata ?? {}) as Record<string, Uint8Array>).reduce(
      (n, [k, m]) => n + k.length + (m?.length ?? 0),
      0,
    );
    out.push(v.data.length + metadata);
    return out;
  }
  for (const child of Array.isArray(value) ? value : Object.values(v)) payloadSizes(child, out);
  return out;
}

describe(`a job of ${VMS} VMs`, () => {
  it('runs in batches: no history over 2,000 events, no payload over 512 KB, the full report complete', async () => {
    // Long XAPI errors on the first snapshots: these VMs fail, their reports carry the message.
    await stack.pool().control.injectFault({
      method: 'VM.snapshot',
      code: 'VM_IS_TEMPLATE',
      params: [LONG_PARAM],
      times: FAILING,
    });
    const handle = await stack.startJob('scale');

    // While it runs, `xcpb run` polls compact progress queries, not the report: the run's (its
    // tally, its running batch) and the batch's (its running VMs and the last few finished).
    let progress: RunProgress | undefined;
    let batch: BatchProgress | undefined;
    for (let i = 0; i < 1_200 && !(batch && batch.counts.vms > 10); i++) {
      await new Promise((r) => setTimeout(r, 500));
      progress = await handle.query<RunProgress>('progress').catch(() => undefined);
      const running = progress?.batches[0];
      if (running) batch = await stack.client.workflow.getHandle(running).query<BatchProgress>('progress');
    }
    expect(progress?.selected).toBe(VMS);
    expect(batch?.vms.length).toBeGreaterThan(0);
    expect(JSON.stringify(progress).length).toBeLessThan(PROGRESS_LIMIT);
    expect(JSON.stringify(batch).length).toBeLessThan(PROGRESS_LIMIT);

    const result = (await runResultOf(handle)) as RunResult;
    expect(result.status).toBe('failure');
    expect(result.counts).toEqual({
      vms: VMS,
      success: VMS - FAILING,
      failure: FAILING,
      skipped: 0,
      running: 0,
    });
    // Failed VMs named up to a cap, the rest counted.
    expect(result.failed).toHaveLength(FAILED_NAMED);
    expect(result.failedMore).toBe(FAILING - FAILED_NAMED);
    expect(result.failed[0].error?.message).toContain('insufficient free space');
    expect(result.vms).toBeUndefined(); // too big to carry: read where it is stored
    expect(result.stored).toEqual({ remoteId: 'nas', path: runReportPaths(handle.workflowId).report });

    // The typed client reads the full report where the run stored it.
    const report = await runReportOf(handle, { config: stack.config });
    expect(report.vms).toHaveLength(VMS);
    expect(new Set(report.vms.map((v) => v.vmName)).size).toBe(VMS);
    expect(report.vms.filter((v) => v.status === 'failure')).toHaveLength(FAILING);
    for (const vm of report.vms.filter((v) => v.status === 'success')) {
      expect(vm.steps.filter((s) => s.name === 'export')).toHaveLength(4); // 3 disks + [NOBAK] skipped
      expect(Date.parse(vm.end!)).toBeGreaterThanOrEqual(Date.parse(vm.start));
    }
    const reportBytes = JSON.stringify(report).length;
    // What the run carried before batches, in one payload: past Temporal's warning.
    expect(reportBytes).toBeGreaterThan(PAYLOAD_LIMIT);

    // Every workflow of the run (this file's namespace holds nothing else): the run, its guard,
    // its batches and its VMs.
    const ids = new Set<string>([handle.workflowId]);
    for (let b = 0; b * 100 < VMS; b++) ids.add(`${handle.workflowId}/batch:${b}`);
    for await (const w of stack.client.workflow.list()) ids.add(w.workflowId);
    for (const vm of report.vms) ids.add(vm.workflowId);
    expect(ids.size).toBeGreaterThanOrEqual(1 + 3 + VMS);
    let longest = { id: '', events: 0 };
    let largest = { id: '', bytes: 0 };
    const queue = [...ids];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
          const history = await stack.client.workflow.getHandle(id).fetchHistory();
          const events = (history.events ?? []) as temporal.api.history.v1.IHistoryEvent[];
          if (events.length > longest.events) longest = { id, events: events.length };
          for (const size of payloadSizes(events)) if (size > largest.bytes) largest = { id, bytes: size };
        }
      }),
    );
    console.log(
      `${VMS} VMs: ${ids.size} workflows; longest history ${longest.events} events (${longest.id}); ` +
        `largest payload ${largest.bytes} bytes (${largest.id}); full report ${reportBytes} bytes`,
    );
    expect(longest.events).toBeLessThanOrEqual(HISTORY_LIMIT);
    expect(largest.bytes).toBeLessThanOrEqual(PAYLOAD_LIMIT);

    // `xcpb runs show` prints the complete report too (the config names the remote it is on).
    const shown = await runXcpb(
      ['runs', 'show', handle.workflowId, '--json', '--config', await stack.writeConfigFile()],
      {
        TEMPORAL_ADDRESS: temporalAddress(),
        TEMPORAL_NAMESPACE: stack.namespace,
      },
    );
    expect(shown.stderr).toBe('');
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout).vms).toHaveLength(VMS);
  }, 1_500_000);
});
