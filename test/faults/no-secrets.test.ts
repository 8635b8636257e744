// No secret leaves the worker (DESIGN §4): after full runs through a real `xcpb worker` process,
// including retried and failed steps, the pool password appears in no workflow input, result, memo,
// search attribute or history event of the namespace, and in no line the worker process printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../core/run-report';
import { dailySchedule, pretty } from '../durability/checks';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { disk, labScenario, labVm, tagJob } from '../helpers/scenarios';
import { stopAllWorkerProcesses, WorkerProcess } from '../helpers/worker-process';

const PASSWORD = 'Pool-Secret-7f3a9c1e';
const JOB = 'nightly';
let stack: BackupStack;
let worker: WorkerProcess;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: labScenario({
      password: PASSWORD,
      vms: [
        labVm('web', { tags: ['prod'], disks: [disk('web root', '8MiB', 1, 2)] }),
        labVm('blocked', {
          tags: ['prod'],
          blocked_operations: { snapshot: 'no snapshots here' },
          disks: [{ name: 'blocked root', size: '8MiB' }],
        }),
      ],
    }),
    jobs: [tagJob(JOB, 'prod', { schedules: dailySchedule(3) })],
    workers: false,
  });
  expect(stack.pool().password).toBe(PASSWORD);
  worker = await WorkerProcess.start(stack);
});
afterAll(async () => {
  await stopAllWorkerProcesses();
  await stack?.close();
});

const BASE64 = /^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * JSON with every payload readable: histories come as protobuf JSON, where payload bytes are base64
 * strings (and raw descriptions may hold byte arrays), so each of those is followed by its decoding.
 */
function readable(value: unknown): string {
  return JSON.stringify(value, (_key, v) => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    if (v && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data))
      return Buffer.from(v.data).toString('utf8');
    if (typeof v === 'string' && v.length >= 8 && BASE64.test(v))
      return `${v} ${Buffer.from(v, 'base64').toString('utf8')}`;
    return v;
  });
}

describe('secrets', () => {
  it('the pool password appears in no workflow history, memo, search attribute or worker output', {
    timeout: 180_000,
  }, async () => {
    const control = stack.pool().control;
    const web = await stack.vm('web');
    const reports: RunReport[] = [];
    // A retried step and a cut export (failures travel through histories and the worker's log)...
    // (the export's first XAPI call: an activity's failed attempt is in its history; a local
    // activity's, such as the metadata's, is retried within the workflow task and is not)
    await control.injectFault({ method: 'VDI.get_by_uuid', code: 'TOO_BUSY' });
    reports.push(await stack.runJob(JOB));
    await control.writeRandomBlocks(web.disks[0].uuid, { count: 1, seed: 'second' });
    await control.cutExport({ afterBytes: 100_000 });
    reports.push(await stack.runJob(JOB));
    // ...and a VM failing for good (its snapshot is blocked): the run fails, the web VM succeeds.
    for (const r of reports) {
      expect(r.vms.find((v) => v.vmName === 'web')?.status, pretty(r)).toBe('success');
      expect(r.vms.find((v) => v.vmName === 'blocked')?.error?.code, pretty(r)).toBe('OPERATION_BLOCKED');
    }

    const executions = [];
    for await (const e of stack.client.workflow.list()) executions.push(e);
    expect(executions.map((e) => e.type).sort()).toEqual([
      'backupBatch', // each run's VMs in a batch (workflows/backup-batch.ts)
      'backupBatch',
      'backupJob',
      'backupJob',
      'backupVm',
      'backupVm',
      'backupVm',
      'backupVm',
      'jobRunGuard', // each run's guard (workflows/job-guard.ts): no secret there either
      'jobRunGuard',
    ]);
    const everything: string[] = [];
    for (const e of executions) {
      const handle = stack.client.workflow.getHandle(e.workflowId, e.runId);
      const description = await handle.describe();
      everything.push(
        readable({
          memo: description.memo,
          searchAttributes: description.searchAttributes,
          typed: description.typedSearchAttributes,
          raw: description.raw,
        }),
      );
      everything.push(readable(await handle.fetchHistory()));
    }
    const text = everything.join('\n');
    // The decoding works: payloads are readable (a disk name is only in the preflight's result).
    expect(text.includes('web root'), 'payloads decoded').toBe(true);
    expect(text.includes('OPERATION_BLOCKED')).toBe(true);
    expect(text.includes('TOO_BUSY')).toBe(true);
    expect(text.includes(PASSWORD), 'the password in a history or description').toBe(false);

    // The worker's own output: it did log the failures, and never the password.
    expect(worker.output).toContain('worker ready');
    expect(worker.output).toContain('TOO_BUSY');
    expect(worker.output.includes(PASSWORD), 'the password in the worker output').toBe(false);
  });
});
