// The terminal rendering of run reports, from plain report values (no server, no I/O).
import { describe, expect, it } from 'vitest';
import {
  exportKind,
  formatBytes,
  formatDuration,
  formatProgress,
  formatReportTree,
  formatRunsTable,
  plainStyle,
  type Style,
} from '../../cli/report-format';
import type { RunSummary } from '../../client/backup-client';
import type { RunReport } from '../../core/run-report';

/** A report time (ISO 8601) from epoch milliseconds. */
const at = (ms: number) => new Date(ms).toISOString();

const t0 = Date.UTC(2026, 10, 26, 3, 0, 0);
const MiB = 1024 * 1024;

const report: RunReport = {
  workflowId: 'xcpb:nightly:manual-2026-11-26T03:00:00.000Z',
  jobId: 'nightly',
  scheduleId: 'daily',
  mode: 'delta',
  status: 'failure',
  start: at(t0),
  end: at(t0 + 65_000),
  vms: [
    {
      vmUuid: 'uuid-web',
      vmName: 'web',
      poolId: 'lab',
      workflowId: 'w/vm:uuid-web',
      status: 'success',
      start: at(t0),
      end: at(t0 + 10_000),
      steps: [
        { name: 'snapshot', status: 'success', start: at(t0), end: at(t0 + 500), detail: 'snapshot s1' },
        {
          name: 'export',
          target: 'vdi-1',
          status: 'success',
          start: at(t0 + 1000),
          end: at(t0 + 3000),
          bytes: 40 * MiB,
          detail: 'delta from 20261125T030000Z',
        },
        {
          name: 'export',
          target: 'scratch [NOBAK]',
          status: 'skipped',
          start: at(t0),
          end: at(t0),
          detail: 'disk marked [NOBAK]',
        },
      ],
    },
    {
      vmUuid: 'uuid-db',
      vmName: 'db',
      poolId: 'lab',
      workflowId: 'w/vm:uuid-db',
      status: 'failure',
      start: at(t0),
      end: at(t0 + 2000),
      steps: [
        {
          name: 'snapshot',
          status: 'failure',
          start: at(t0),
          end: at(t0 + 2000),
          error: { code: 'VM_IS_TEMPLATE', message: 'snapshot of VM uuid-db: VM_IS_TEMPLATE' },
        },
      ],
    },
  ],
};

/** Marks colours as tags, so a test sees which text got which colour. */
const tagged: Style = {
  green: (t) => `<g>${t}</g>`,
  red: (t) => `<r>${t}</r>`,
  orange: (t) => `<o>${t}</o>`,
  dim: (t) => t,
  bold: (t) => t,
};

describe('formatReportTree', () => {
  it('prints job → VM → steps with durations, bytes, throughput, details and XAPI errors', () => {
    expect(formatReportTree(report, plainStyle, { timeZone: 'UTC' }).split('\n')).toEqual([
      'xcpb:nightly:manual-2026-11-26T03:00:00.000Z  job nightly (delta, schedule daily)  failure  ' +
        'started 2026-11-26 03:00:00 UTC  1m 05s',
      '  ✓ web uuid-web on lab  success  10.0 s  40.0 MiB',
      '      snapshot                success  500 ms  snapshot s1',
      '      export vdi-1            success  2.0 s  40.0 MiB  20.0 MiB/s  delta from 20261125T030000Z',
      '      export scratch [NOBAK]  skipped  0 ms  disk marked [NOBAK]',
      '  ✗ db uuid-db on lab  failure  2.0 s',
      '      snapshot  failure  2.0 s',
      '        error: VM_IS_TEMPLATE: snapshot of VM uuid-db: VM_IS_TEMPLATE',
      '2 VMs: 1 success, 1 failure',
    ]);
  });

  it('colours statuses green, red and orange, padding before painting', () => {
    const text = formatReportTree(report, tagged);
    expect(text).toContain('<g>success</g>  500 ms');
    expect(text).toContain('<o>skipped</o>  0 ms');
    expect(text).toContain('<r>failure</r>  2.0 s');
    expect(text).toContain('<r>error: VM_IS_TEMPLATE: ');
  });

  it('shows a running run with the time so far', () => {
    const running: RunReport = { ...report, status: 'running', end: undefined, vms: [] };
    expect(formatReportTree(running, plainStyle, { now: t0 + 3_000 })).toMatch(
      /running {2}started .* {2}3\.0 s/,
    );
  });

  it("prints the run's start in the zone it is given (its schedule's)", () => {
    expect(formatReportTree(report, plainStyle, { timeZone: 'Europe/Paris' })).toContain(
      'started 2026-11-26 04:00:00 CET',
    );
    expect(formatReportTree(report, plainStyle, { timeZone: 'America/New_York' })).toContain(
      'started 2026-11-25 22:00:00 GMT-5',
    );
  });
});

describe('formatProgress', () => {
  it('gives each VM its current step and bytes', () => {
    const live: RunReport = {
      ...report,
      status: 'running',
      vms: [
        {
          ...report.vms[0],
          status: 'running',
          steps: [
            { name: 'snapshot', status: 'success', start: at(t0), end: at(t0 + 1) },
            { name: 'export', target: 'vdi-1', status: 'running', start: at(t0), bytes: 3 * MiB },
          ],
        },
        { ...report.vms[1], vmName: 'database', status: 'running', steps: [] },
      ],
    };
    expect(formatProgress(live)).toEqual(['web       export vdi-1  3.0 MiB', 'database  starting']);
    expect(formatProgress({ ...live, vms: [] })).toEqual(['nightly: selecting VMs…']);
  });
});

describe('units', () => {
  it('bytes and durations', () => {
    expect([0, 1023, 1024, 1.5 * MiB, 3 * 1024 * MiB].map(formatBytes)).toEqual([
      '0 B',
      '1023 B',
      '1.0 KiB',
      '1.5 MiB',
      '3.0 GiB',
    ]);
    expect([12, 1500, 59_000, 61_000, 3_723_000].map(formatDuration)).toEqual([
      '12 ms',
      '1.5 s',
      '59.0 s',
      '1m 01s',
      '1h 02m',
    ]);
  });

  it('exportKind tells a full from a delta', () => {
    expect(exportKind(report)).toBe('delta');
    const full = structuredClone(report);
    full.vms[0].steps[1].detail = 'full: no exported snapshot of this job to compute a delta from';
    expect(exportKind(full)).toBe('full');
    expect(exportKind({ ...report, vms: [] })).toBeUndefined();
  });
});

describe('formatRunsTable', () => {
  it("a table of id, job, status, start in each run's zone, duration and outcome", () => {
    const runs: RunSummary[] = [
      {
        workflowId: 'xcpb:nightly:manual-x',
        runId: 'r1',
        jobId: 'nightly',
        temporalStatus: 'COMPLETED',
        start: new Date(t0),
        end: new Date(t0 + 90_000),
        outcome: 'success',
      },
      {
        workflowId: 'xcpb:web:daily-y',
        runId: 'r2',
        jobId: 'web',
        temporalStatus: 'RUNNING',
        start: new Date(t0),
      },
    ];
    const zoneOf = (r: RunSummary) => (r.jobId === 'web' ? 'Asia/Tokyo' : 'UTC');
    expect(formatRunsTable(runs, plainStyle, { now: t0 + 5_000, zoneOf }).split('\n')).toEqual([
      'WORKFLOW ID            JOB      STATUS     START                      DURATION  OUTCOME',
      'xcpb:nightly:manual-x  nightly  completed  2026-11-26 03:00:00 UTC    1m 30s    success',
      'xcpb:web:daily-y       web      running    2026-11-26 12:00:00 GMT+9  5.0 s',
    ]);
    expect(formatRunsTable([])).toBe('no runs');
  });
});
