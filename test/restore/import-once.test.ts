// Idempotent imports: the worker is killed (kill -9) after XAPI finished importing a restored XVA and
// before the VM was marked as this restore's. The retried attempt finds the first import's task (it
// was created first, named after the restore, and passed as task_id) and its VM: exactly one VM.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_QUEUE } from '../../core/task-queues';
import type { RestoreVmInput, RestoreVmResult } from '../../workflows/restore-vm';
import { type BackupStack, readAll, startBackupStack } from '../helpers/backup-stack';
import { listJson } from '../helpers/remote-files';
import { disk, labScenario, labVm, tagJob } from '../helpers/scenarios';
import { stopAllWorkerProcesses, WorkerProcess } from '../helpers/worker-process';

let stack: BackupStack;
let worker: WorkerProcess;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: labScenario({
      password: 'import-once-pw',
      srSize: '2GiB',
      vms: [labVm('app', { tags: ['app'], power: 'Halted', disks: [disk('app root', '16MiB', 5, 6)] })],
    }),
    jobs: [
      tagJob('weekly', 'app', {
        mode: 'full',
        schedules: [{ id: 'sunday', cron: '0 3 * * 0', retention: { remote: 2, snapshot: 0 } }],
      }),
    ],
    workers: false,
  });
  worker = await WorkerProcess.start(stack);
  const report = await stack.runJob('weekly');
  expect(report.status).toBe('success');
}, 180_000);
afterAll(async () => {
  await stopAllWorkerProcesses();
  await stack?.close();
});

type Rec = {
  uuid: string;
  name_label: string;
  status: string;
  is_a_snapshot: boolean;
  is_a_template: boolean;
};

async function records(cls: 'VM' | 'task'): Promise<Rec[]> {
  const xapi = await stack.xapi();
  try {
    return Object.values(await xapi.getAllRecords<Rec>(cls));
  } finally {
    await xapi.logout();
  }
}
const vmCount = async () => (await records('VM')).length; // the imported VM may be a template until restored

describe('idempotent XAPI imports', () => {
  it('kill -9 after the XVA import finished, before the VM was marked: exactly one VM', async () => {
    const vm = await stack.vm('app');
    const ts = (await listJson(stack.remoteDir('nas'), vm.uuid)).at(-1)!.replace('.json', '');
    const before = await vmCount();
    const id = `xcpb:restore:import-once-${randomUUID()}`;
    const control = stack.pool().control;
    // The marking reads the VM's other_config first: held long enough to kill the worker there.
    await control.delay('VM.get_other_config', 20_000);
    const input: RestoreVmInput = { backupId: `nas:${vm.uuid}/${ts}`, poolId: 'lab', sr: 'Local' };
    const handle = await stack.client.workflow.start('restoreVm', {
      taskQueue: MAIN_QUEUE,
      workflowId: id,
      args: [input],
    });
    const deadline = Date.now() + 90_000;
    while (
      !(await records('task')).some((t) => t.name_label === `xcpb import ${id}` && t.status === 'success')
    ) {
      if (Date.now() > deadline)
        throw new Error(
          `the import never finished: ${JSON.stringify(await records('task'))} ${worker.output.slice(-3000)}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
    await worker.kill();
    expect(await vmCount()).toBe(before + 1); // imported, not marked
    await control.clearFaults();
    worker = await WorkerProcess.start(stack);
    const result = (await handle.result()) as RestoreVmResult;
    console.log(`import-once: VMs before ${before}, after ${await vmCount()} (1 restored expected)`);
    expect(await vmCount()).toBe(before + 1);
    const restored = await readAll(await control.readVdi(result.vdis[0].uuid));
    expect(restored.equals(await readAll(await control.readVdi(vm.disks[0].uuid)))).toBe(true);
    expect((await records('task')).filter((t) => t.name_label.startsWith('xcpb import'))).toEqual([]);
  });
});
