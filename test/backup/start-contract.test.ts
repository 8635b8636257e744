// The start contract as a user meets it: `temporal workflow start` with the minimal input of the
// README backs up the demo pool (every default filled in the workflow); a misspelt mode fails the
// run at once, naming job.mode, without a single activity.

import { WorkflowFailedError } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReportOf } from '../../client/run-result';
import { pretty } from '../durability/checks';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { runXcpb } from '../helpers/cli';
import { temporalAddress, temporalCli } from '../helpers/temporal';

let stack: BackupStack;

beforeAll(async () => {
  stack = await startBackupStack({ scenario: 'demo', jobs: [], remotes: ['local'] });
});
afterAll(() => stack?.close());

/** `temporal workflow start --type backupJob --task-queue xcpb --input '…'`, as in the README. */
async function temporalStart(workflowId: string, input: string, ...more: string[]): Promise<void> {
  const r = await temporalCli([
    'workflow',
    'start',
    '--type',
    'backupJob',
    '--task-queue',
    'xcpb',
    '--workflow-id',
    workflowId,
    '--namespace',
    stack.namespace,
    '--input',
    input,
    ...more,
  ]);
  expect(r.code, r.stderr).toBe(0);
}

describe('backupJob started by the temporal CLI', () => {
  it('the minimal input backs up the demo pool', async () => {
    const workflowId = `xcpb:x:cli-${Date.now()}`;
    await temporalStart(
      workflowId,
      '{"job":{"id":"x","mode":"delta","vms":{"pools":["demo"]},"remotes":["local"]}}',
    );
    const handle = stack.client.workflow.getHandle(workflowId);
    const report = await runReportOf(handle);
    expect(report.status, pretty(report)).toBe('success');
    // Every VM of the pool (templates never), each backed up to the remote.
    expect(report.vms.map((v) => v.vmName).sort()).toEqual([
      'build-dev-01',
      'db-prod-01',
      'test-dev-02',
      'web-prod-01',
    ]);
    for (const vm of report.vms) {
      expect(vm.status, pretty(report)).toBe('success');
      expect(vm.steps.find((s) => s.name === 'transfer')).toMatchObject({
        target: 'local',
        status: 'success',
      });
    }
    expect((await handle.describe()).status.name).toBe('COMPLETED');

    // Legible in the Web UI: the run's current details count the VMs; each VM's child has a
    // static summary and details, its name in the memo, and activities that say what they work on.
    const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toMatch(/^\*\*4\/4 VMs done\*\* · 4 succeeded · [\d.]+ MiB exported$/);
    const db = report.vms.find((v) => v.vmName === 'db-prod-01')!;
    const child = await stack.client.workflow.getHandle(db.workflowId).describe();
    expect(await child.staticSummary()).toBe('db-prod-01 · delta backup · pool demo · job x');
    expect(await child.staticDetails()).toContain(`**VM** db-prod-01 (${db.vmUuid})`);
    expect(child.memo).toEqual({ vmName: 'db-prod-01' });
    const summaries: string[] = [];
    for (const e of (await stack.client.workflow.getHandle(db.workflowId).fetchHistory()).events ?? []) {
      // Activities, and local activities (the cheap bookkeeping: their markers carry the summary).
      if (
        (e.activityTaskScheduledEventAttributes || e.markerRecordedEventAttributes) &&
        e.userMetadata?.summary
      )
        summaries.push(defaultPayloadConverter.fromPayload(e.userMetadata.summary as Payload));
    }
    expect(summaries).toEqual(
      expect.arrayContaining([
        'preflight of db-prod-01',
        'snapshot of db-prod-01',
        'export disk db-prod-01 root of db-prod-01 → local',
        'write metadata of db-prod-01 → local',
        'delete old snapshots of db-prod-01',
      ]),
    );
  });

  it('a raw start shows what it is from the first moment; --static-summary/--static-details as the README has them', async () => {
    // The VM selection held back, so the run is seen before any VM starts.
    await stack.pool().control.delay('VM.get_all_records', 6_000);
    const workflowId = `xcpb:x:raw-${Date.now()}`;
    try {
      await temporalStart(
        workflowId,
        '{"job":{"id":"x","mode":"delta","vms":{"pools":["demo"],"tags":["web"]},"remotes":["local"]}}',
        '--static-summary',
        'backup job x · delta · by hand',
        '--static-details',
        'started with the temporal CLI',
      );
      const handle = stack.client.workflow.getHandle(workflowId);
      const early = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(early.currentDetails).toMatch(/^\*\*backup job x · delta · manual\*\*\n\n\*\*Job\*\* x/);
      expect(early.currentDetails).toContain('**Selection** pools demo, tags web');
      const description = await handle.describe();
      expect(await description.staticSummary()).toBe('backup job x · delta · by hand');
      expect(await description.staticDetails()).toBe('started with the temporal CLI');
      expect((await runReportOf(handle)).vms.map((v) => v.vmName)).toEqual(['web-prod-01']);
      const done = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(done.currentDetails).toMatch(/^\*\*1\/1 VM done\*\* · 1 succeeded/);
    } finally {
      await stack.pool().control.delay('VM.get_all_records', 0);
    }
  });

  it('"mode":"fulll" fails at once naming job.mode, and no activity runs', async () => {
    const workflowId = `xcpb:x:fulll-${Date.now()}`;
    await temporalStart(
      workflowId,
      '{"job":{"id":"x","mode":"fulll","vms":{"pools":["demo"]},"remotes":["local"]}}',
    );
    const handle = stack.client.workflow.getHandle(workflowId);
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as {
      type?: string;
      nonRetryable?: boolean;
      message: string;
    };
    expect(cause).toMatchObject({ type: 'XcpbInvalidInput', nonRetryable: true });
    expect(cause.message).toMatch(
      /^invalid backupJob input: job\.mode: Invalid option: expected one of "snapshot"\|"full"\|"delta"/,
    );
    expect((await handle.describe()).status.name).toBe('FAILED');
    const events = [];
    for (const e of (await handle.fetchHistory()).events ?? []) events.push(e);
    expect(events.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
    expect(events.filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);

    const shown = await runXcpb([
      'runs',
      'show',
      workflowId,
      '--json',
      '--address',
      temporalAddress(),
      '--namespace',
      stack.namespace,
    ]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      status: 'failure',
      reason: expect.stringMatching(/job\.mode/),
    });
  });
});
