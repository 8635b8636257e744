// The run commands as a user types them (`xcpb run | runs | cancel | preview`), against the real
// Temporal dev server, the simulator over HTTP and in-process workers on a namespace of their own.

import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ScheduleOverlapPolicy, WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { formatInZone } from '../../cli/zones';
import { getRunReport } from '../../client/backup-client';
import { runReportOf } from '../../client/run-result';
import { scheduleWorkflowId } from '../../core/job-input';
import type { RunReport } from '../../core/run-report';
import { XCPB_KEYS } from '../../core/xo-keys';
import { xvaSizeBound } from '../../formats/xva';
import { applyPlan, planFromConfig } from '../../schedules/apply';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { repoRoot, runXcpb } from '../helpers/cli';
import { eventually } from '../helpers/eventually';
import { temporalAddress } from '../helpers/temporal';

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const random = (seed: number, blocks: number) => ({ type: 'random' as const, seed, blocks });

const scenario = {
  pools: [
    {
      id: 'lab',
      credentials: [{ username: 'root', password: 'lab-secret-pw' }],
      srs: [{ id: 'local', name: 'Local', size: '2GiB', default: true }],
      vms: [
        {
          name: 'web',
          tags: ['prod', 'web'],
          power: 'Running' as const,
          disks: [{ name: 'web root', size: '8MiB', content: random(1, 2) }],
        },
        {
          name: 'db',
          tags: ['prod'],
          power: 'Running' as const,
          disks: [{ name: 'db root', size: '6MiB', content: random(2, 2) }],
        },
        {
          name: 'idle',
          tags: ['prod'],
          power: 'Halted' as const,
          disks: [{ name: 'idle root', size: '4MiB' }],
        },
        {
          name: 'dev',
          tags: ['dev'],
          power: 'Running' as const,
          disks: [{ name: 'dev root', size: '4MiB' }],
        },
        {
          name: 'private',
          tags: ['prod', 'xo:no-bak'],
          power: 'Running' as const,
          disks: [{ name: 'p root', size: '4MiB' }],
        },
      ],
    },
  ],
};

const schedules = [{ id: 'daily', cron: '0 3 * * *', retention: { remote: 3, snapshot: 1 } }];
let stack: BackupStack;
let configFile: string;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario,
    jobs: [
      {
        id: 'nightly',
        mode: 'delta',
        vms: { tags: ['prod'], powerState: 'running' },
        remotes: ['nas'],
        schedules,
      },
      {
        id: 'web-only',
        mode: 'delta',
        vms: { tags: ['web'] },
        remotes: ['nas'],
        schedules: [{ ...schedules[0], timezone: 'Asia/Tokyo' }],
      },
      {
        id: 'web-full',
        mode: 'full',
        compression: 'none',
        vms: { tags: ['web'] },
        remotes: ['nas'],
        schedules,
      },
    ],
  });
  configFile = await stack.writeConfigFile();
});
afterAll(() => stack?.close());

const xcpbIn = (env: NodeJS.ProcessEnv, ...args: string[]) =>
  runXcpb(args, { TEMPORAL_ADDRESS: temporalAddress(), TEMPORAL_NAMESPACE: stack.namespace, ...env });
const xcpb = (...args: string[]) => xcpbIn({}, ...args);

async function snapshotsOfRun(runId: string) {
  const all = await stack.pool().control.snapshots();
  return all.filter((s) => s.other_config[XCPB_KEYS.run] === runId || s.name_label.includes(runId));
}

/** Starts a run that stays in flight until cancelled (its disks changed, and their exports crawl):
 * by hand with `xcpb run --no-wait`, or as the job's schedule does. */
async function startSlowRun(by: 'xcpb run' | 'schedule'): Promise<string> {
  for (const name of ['web', 'db']) {
    for (const disk of (await stack.vm(name)).disks)
      await stack
        .pool()
        .control.writeRandomBlocks(disk.uuid, { count: 1, seed: `${disk.uuid}-${Date.now()}` });
  }
  await stack.pool().control.throttle({ bytesPerSecond: 16 * 1024 });
  let workflowId: string;
  if (by === 'xcpb run') {
    const started = await xcpb('run', 'nightly', '--config', configFile, '--no-wait');
    expect(started.code, started.stderr).toBe(0);
    workflowId = started.stdout.trim();
  } else {
    await applyPlan(stack.client, await planFromConfig(stack.client, stack.config));
    const schedule = stack.client.schedule.getHandle(scheduleWorkflowId('nightly', 'daily'));
    // As a cron firing would (SKIP), not trigger()'s default ALLOW_ALL that the schedule does not track.
    await schedule.trigger(ScheduleOverlapPolicy.SKIP);
    workflowId = await eventually(async () => {
      const [running] = (await schedule.describe()).info.runningActions;
      expect(running).toBeDefined();
      return running.workflow.workflowId;
    });
  }
  await eventually(async () => {
    const report = await getRunReport(stack.client, workflowId);
    expect(report.vms.some((vm) => vm.steps.some((s) => s.name === 'export' && s.status === 'running'))).toBe(
      true,
    );
  }, 30_000);
  return workflowId;
}

/** Waits for a cancelled run to end, and checks it ended cancelled with nothing left behind. */
async function expectCancelledCleanly(workflowId: string): Promise<void> {
  const handle = stack.client.workflow.getHandle(workflowId);
  await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
  expect((await handle.describe()).status.name).toBe('CANCELLED');
  // A snapshot call the run abandoned would land later: wait until the pool has none in flight.
  await eventually(async () => expect((await stack.pool().control.stats()).current.snapshot).toBe(0), 30_000);
  expect(await snapshotsOfRun(workflowId)).toEqual([]);
  const shown = await xcpb('runs', 'show', workflowId, '--json');
  expect(shown.code, shown.stderr).toBe(0);
  const report = JSON.parse(shown.stdout) as RunReport;
  expect(report.status).toBe('failure');
  expect(report.vms.every((vm) => vm.steps.some((s) => s.name === 'cleanup' && s.status === 'success'))).toBe(
    true,
  );
}

describe('xcpb run', () => {
  it('runs a job, prints its report tree and exits 0', async () => {
    const r = await xcpb('run', 'nightly', '--config', configFile);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/started xcpb:nightly:manual-/);
    expect(r.stdout).toMatch(/job nightly \(delta, schedule daily\)\s+success/);
    for (const vm of ['web', 'db']) expect(r.stdout).toMatch(new RegExp(`✓ ${vm} `));
    expect(r.stdout).not.toMatch(/idle|private|dev /);
    expect(r.stdout).toMatch(/export (web|db) root\s+success .* MiB\/s\s+full: /);
    expect(r.stdout).toMatch(/2 VMs: 2 success/);
  });

  it('--json prints only the report, here a delta', async () => {
    const r = await xcpb('run', 'nightly', '--config', configFile, '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as RunReport;
    expect(report).toMatchObject({ jobId: 'nightly', scheduleId: 'daily', mode: 'delta', status: 'success' });
    expect(report.vms.map((vm) => vm.vmName).sort()).toEqual(['db', 'web']);
    const exports = report.vms.flatMap((vm) => vm.steps.filter((s) => s.name === 'export'));
    expect(exports.every((s) => s.detail?.startsWith('delta from'))).toBe(true);
  });

  it('exits 1 when a VM fails, and shows the XAPI code', async () => {
    await stack.pool().control.injectFault({ method: 'VM.snapshot', code: 'VM_IS_TEMPLATE', times: 5 });
    try {
      const r = await xcpb('run', 'web-only', '--config', configFile);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/✗ web .*failure/);
      expect(r.stdout).toMatch(/error: VM_IS_TEMPLATE: /);
    } finally {
      await stack.pool().control.clearFaults();
    }
  });

  it('--no-wait prints the workflow id; runs lists it and runs show prints its tree', async () => {
    const started = await xcpb('run', 'web-only', '--config', configFile, '--no-wait');
    expect(started.code, started.stderr).toBe(0);
    const workflowId = started.stdout.trim();
    expect(workflowId).toMatch(/^xcpb:web-only:manual-\d{4}-/);
    await runReportOf(stack.client.workflow.getHandle(workflowId));

    await eventually(async () => {
      const listed = await xcpb('runs', '--job', 'web-only', '--json');
      expect(listed.code, listed.stderr).toBe(0);
      const runs = JSON.parse(listed.stdout) as { workflowId: string; outcome?: string; jobId: string }[];
      expect(runs.find((r) => r.workflowId === workflowId)).toMatchObject({
        jobId: 'web-only',
        outcome: 'success',
      });
      expect(runs.every((r) => r.jobId === 'web-only')).toBe(true);
    });
    const table = await xcpb('runs');
    expect(table.stdout).toMatch(/WORKFLOW ID\s+JOB\s+STATUS\s+START\s+DURATION\s+OUTCOME/);
    expect(table.stdout).toContain(workflowId);
    expect(table.stdout).not.toContain('\u001b['); // no colour in a pipe, nor with NO_COLOR
    expect(table.stdout).not.toContain('/vm:'); // job runs only, not their per-VM children

    const shown = await xcpb('runs', 'show', workflowId);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(workflowId);
    // Times in the zone of the run's schedule (web-only's is Asia/Tokyo): from the config given,
    // else from the Temporal schedule `xcpb apply` made, else this machine's zone.
    const start = formatInZone(
      (await stack.client.workflow.getHandle(workflowId).describe()).startTime,
      'Asia/Tokyo',
    );
    expect(start).toMatch(/GMT\+9$/);
    const withConfig = await xcpb('runs', '--job', 'web-only', '--config', configFile);
    expect(withConfig.stdout).toContain(start);
    expect((await xcpb('runs', 'show', workflowId, '--config', configFile)).stdout).toContain(
      `started ${start}`,
    );
    const utc = { TZ: 'UTC' };
    expect((await xcpbIn(utc, 'runs', '--job', 'web-only')).stdout).not.toContain(start);
    await applyPlan(stack.client, await planFromConfig(stack.client, stack.config));
    expect((await xcpbIn(utc, 'runs', '--job', 'web-only')).stdout).toContain(start);
    expect((await xcpbIn(utc, 'runs', 'show', workflowId)).stdout).toContain(`started ${start}`);
    for (const step of [
      'preflight',
      'snapshot',
      'export',
      'transfer nas',
      'metadata',
      'cleanup',
      'retention nas',
    ])
      expect(shown.stdout).toMatch(new RegExp(`^ {6}${step}\\b.*success`, 'm'));
  });
});

describe('runs in flight', () => {
  it('refuses a second run of the job naming the first, and `xcpb cancel` ends the first cleanly', async () => {
    const first = await startSlowRun('xcpb run');
    try {
      const second = await xcpb('run', 'nightly', '--config', configFile);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`already has a run in flight: ${first}`);

      const live = await xcpb('runs', 'show', first);
      expect(live.stdout).toMatch(/export (web|db) root\s+running/);
      // The running export heartbeats its bytes and, from the VHD's header, its total (for ETAs).
      await eventually(async () => {
        const json = JSON.parse((await xcpb('runs', 'show', first, '--json')).stdout) as RunReport;
        const step = json.vms
          .flatMap((vm) => vm.steps)
          .find((s) => s.name === 'export' && s.status === 'running');
        expect(step?.total).toBeGreaterThan(0);
        expect(step!.bytes ?? 0).toBeLessThanOrEqual(step!.total!);
      }, 20_000);

      const cancelled = await xcpb('cancel', first);
      expect(cancelled.code, cancelled.stderr).toBe(0);
    } finally {
      await stack.pool().control.throttle({ bytesPerSecond: 0 });
    }
    await expectCancelledCleanly(first);
  });

  it('a full (XVA) export shows a total too, bounded from the disks before the stream starts', async () => {
    // The simulator sends the XVA a chunk (1 MiB) at a time: ~4 s a chunk, ~20 s in all.
    await stack.pool().control.throttle({ bytesPerSecond: 256 * 1024 });
    let workflowId = '';
    try {
      const started = await xcpb('run', 'web-full', '--config', configFile, '--no-wait');
      expect(started.code, started.stderr).toBe(0);
      workflowId = started.stdout.trim();
      await eventually(async () => {
        const json = JSON.parse((await xcpb('runs', 'show', workflowId, '--json')).stdout) as RunReport;
        const step = json.vms
          .flatMap((vm) => vm.steps)
          .find((s) => s.name === 'export' && s.status === 'running');
        expect(step?.bytes).toBeGreaterThan(0);
        // web's 8 MiB disk holds at least its 2 seeded blocks: more than those, at most the whole disk.
        expect(step?.total).toBeGreaterThan(2 * 2 * 1024 * 1024);
        expect(step!.total!).toBeLessThanOrEqual(
          xvaSizeBound([{ virtualSize: 8 * MiB, dataBytes: 8 * MiB }]),
        );
        expect(step!.bytes!).toBeLessThanOrEqual(step!.total!);
      }, 20_000);
    } finally {
      await stack.pool().control.throttle({ bytesPerSecond: 0 });
    }
    const report = await runReportOf(stack.client.workflow.getHandle(workflowId));
    expect(report.status).toBe('success');
  });

  it('refuses a run while a scheduled one is in flight; `temporal workflow cancel` ends it the same way', async () => {
    const run = await startSlowRun('schedule');
    try {
      expect(run).toMatch(/^xcpb:nightly:daily-/);
      const refused = await xcpb('run', 'nightly', '--config', configFile);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`already has a run in flight: ${run}`);
      await exec(inject('temporalCli'), [
        'workflow',
        'cancel',
        '--workflow-id',
        run,
        '--address',
        temporalAddress(),
        '--namespace',
        stack.namespace,
      ]);
    } finally {
      await stack.pool().control.throttle({ bytesPerSecond: 0 });
    }
    await expectCancelledCleanly(run);
  });

  it('cancel of an unknown run says so', async () => {
    const r = await xcpb('cancel', 'xcpb:nightly:manual-never');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no run with id xcpb:nightly:manual-never/);
  });

  it('runs show of an unknown run says so', async () => {
    const r = await xcpb('runs', 'show', 'nope');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('xcpb runs show: no run with id nope\n');
  });
});

describe('xcpb preview', () => {
  it('lists the VMs a run would take now and why the others are left out', async () => {
    const r = await xcpb('preview', 'nightly', '--config', configFile);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/would back up 2 VMs/);
    const json = await xcpb('preview', 'nightly', '--config', configFile, '--json');
    const preview = JSON.parse(json.stdout) as {
      selected: { name: string }[];
      excluded: { name: string; reason: string }[];
    };
    expect(preview.selected.map((v) => v.name).sort()).toEqual(['db', 'web']);
    const why = Object.fromEntries(preview.excluded.map((v) => [v.name, v.reason]));
    expect(why).toEqual({
      idle: 'power state Halted, job wants running',
      dev: 'has none of the tags prod',
      private: 'tagged xo:no-bak',
    });
    expect(r.stdout).toMatch(/idle\s+power state Halted, job wants running/);
  });
});

describe('the typed client', () => {
  it('examples/start-backup.ts starts a run and prints its report', async () => {
    const { stdout } = await exec(
      path.join(repoRoot, 'node_modules/.bin/tsx'),
      ['examples/start-backup.ts', configFile, 'web-only'],
      {
        cwd: repoRoot,
        env: { ...process.env, TEMPORAL_ADDRESS: temporalAddress(), TEMPORAL_NAMESPACE: stack.namespace },
      },
    );
    expect(stdout).toMatch(/^started xcpb:web-only:manual-/);
    expect(stdout).toMatch(/job web-only \(delta, schedule daily\)\s+success/);
  });
});
