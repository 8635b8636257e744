// A restore under faults: cancelled mid-way (what it created is removed), and the worker process
// killed (kill -9) in the middle of a disk import (a new worker finishes it: one VM, exact bytes).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_QUEUE } from '../../core/task-queues';
import type { RestoreVmInput, RestoreVmResult } from '../../workflows/restore-vm';
import { type BackupStack, readAll, startBackupStack } from '../helpers/backup-stack';
import { listJson } from '../helpers/remote-files';
import { dailySchedule, disk, labScenario, labVm, tagJob } from '../helpers/scenarios';
import { stopAllWorkerProcesses, WorkerProcess } from '../helpers/worker-process';

let stack: BackupStack;
let worker: WorkerProcess;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: labScenario({
      password: 'restore-kill-pw',
      vms: [
        labVm('big', {
          tags: ['big'],
          power: 'Halted',
          disks: [disk('big root', '320MiB', 11, 160), disk('big data', '8MiB', 12, 2)],
        }),
      ],
    }),
    jobs: [tagJob('nightly', 'big', { schedules: dailySchedule(3) })],
    workers: false,
  });
  worker = await WorkerProcess.start(stack);
  const report = await stack.runJob('nightly');
  expect(report.status).toBe('success');
}, 180_000);
afterAll(async () => {
  await stopAllWorkerProcesses();
  await stack?.close();
});

async function backupId(): Promise<string> {
  const vm = await stack.vm('big');
  const ts = (await listJson(stack.remoteDir('nas'), vm.uuid)).at(-1)!.replace('.json', '');
  return `nas:${vm.uuid}/${ts}`;
}

function start(input: RestoreVmInput, workflowId: string) {
  return stack.client.workflow.start('restoreVm', { taskQueue: MAIN_QUEUE, workflowId, args: [input] });
}

/** `VM <uuid>` / `VDI <uuid>` of everything marked with this restore id. */
async function marked(restoreId: string): Promise<string[]> {
  const xapi = await stack.xapi();
  try {
    const out: string[] = [];
    for (const cls of ['VM', 'VDI']) {
      const all = await xapi.getAllRecords<{ uuid: string; other_config: Record<string, string> }>(cls);
      for (const r of Object.values(all))
        if (r.other_config?.['xcpb:restore'] === restoreId) out.push(`${cls} ${r.uuid}`);
    }
    return out.sort();
  } finally {
    await xapi.logout();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('restore under faults', () => {
  it('cancelled mid-restore: what it created is removed', async () => {
    const id = `xcpb:restore:cancel-${randomUUID()}`;
    await stack.pool().control.delay('VDI.create', 1_500);
    try {
      const handle = await start({ backupId: await backupId(), poolId: 'lab', sr: 'Local' }, id);
      await waitFor('the first restored VDI', async () => (await marked(id)).length > 0);
      await handle.cancel();
      const err = await handle.result().then(
        () => undefined,
        (e) => e,
      );
      expect(String(err?.cause?.name ?? err?.cause)).toMatch(/Cancel/);
      expect(await marked(id)).toEqual([]);
    } finally {
      await stack.pool().control.clearFaults();
    }
  });

  it('kill -9 of the worker in the middle of a disk import: a new worker completes the restore', async () => {
    const id = `xcpb:restore:kill-${randomUUID()}`;
    const control = stack.pool().control;
    const handle = await start({ backupId: await backupId(), poolId: 'lab', sr: 'Local' }, id);
    await waitFor(
      'a disk import under way',
      async () => (await control.stats()).current.import_raw_vdi > 0,
      90_000,
    );
    await worker.kill();
    worker = await WorkerProcess.start(stack);
    const result = (await handle.result()) as RestoreVmResult;
    const vm = await stack.vm('big');
    for (const [i, v] of result.vdis.entries()) {
      const restored = await readAll(await control.readVdi(v.uuid));
      const source = await readAll(await control.readVdi(vm.disks[i].uuid));
      expect(restored.equals(source), v.nameLabel).toBe(true);
    }
    // One VM and its two disks: the retried attempt made nothing twice.
    expect(await marked(id)).toEqual(
      [`VM ${result.vmUuid}`, ...result.vdis.map((v) => `VDI ${v.uuid}`)].sort(),
    );
  });
});
