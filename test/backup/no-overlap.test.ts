// No two runs of a job at once, whoever starts them and however close together: Temporal decides
// (one workflow id, the job's run guard, can run only once). Five starts in the same instant: one
// runs, four are refused naming it; a scheduled run meanwhile is skipped, naming it; once the run
// ended the job is free again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReportOf } from '../../client/run-result';
import { jobInput } from '../../core/job-input';
import { MAIN_QUEUE } from '../../core/task-queues';
import { applyPlan, planFromConfig } from '../../schedules/apply';
import { dailySchedule, pretty, random } from '../durability/checks';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { eventually } from '../helpers/eventually';

const MiB = 1 << 20;
let stack: BackupStack;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'overlap-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '2GiB', default: true }],
          networks: [{ id: 'net0', name: 'Network 0' }],
          vms: [
            {
              name: 'app',
              tags: ['prod'],
              power: 'Running' as const,
              networks: ['net0'],
              disks: [{ name: 'root', size: '16MiB', content: random(4, 4) }],
            },
          ],
        },
      ],
    },
    jobs: [
      {
        id: 'nightly',
        mode: 'delta',
        vms: { tags: ['prod'] },
        remotes: ['nas'],
        schedules: dailySchedule(5),
      },
    ],
  });
});
afterAll(() => stack?.close());

const job = () => stack.config.jobs[0];
const start = (workflowId: string) =>
  stack.client.workflow.start('backupJob', {
    taskQueue: MAIN_QUEUE,
    workflowId,
    args: [jobInput(job(), job().schedules[0])],
  });
// A refused run ends Failed with its report in the failure (client/run-result reads either way).
const reportOf = (workflowId: string) => runReportOf(stack.client.workflow.getHandle(workflowId));

describe('one run of a job at a time', () => {
  it('5 starts in the same instant: one runs, the others are refused, a scheduled one skipped, all naming it', async () => {
    await stack.pool().control.throttle({ bytesPerSecond: 4 * MiB }); // the run lasts a few seconds
    const ids = Array.from({ length: 5 }, (_, i) => `xcpb:nightly:manual-same-instant-${i}`);
    await Promise.all(ids.map(start));
    // While the winner runs, its schedule fires too.
    await applyPlan(stack.client, await planFromConfig(stack.client, stack.config));
    await stack.client.schedule.getHandle('xcpb:nightly:daily').trigger();
    const scheduledId = await eventually(async () => {
      const d = await stack.client.schedule.getHandle('xcpb:nightly:daily').describe();
      const action = d.info.recentActions.at(-1)?.action;
      expect(action?.type).toBe('startWorkflow');
      return action!.type === 'startWorkflow' ? action!.workflow.workflowId : '';
    });
    const reports = await Promise.all(ids.map(reportOf));
    await stack.pool().control.throttle({ bytesPerSecond: 0 });
    const ran = reports.filter((r) => r.vms.length > 0);
    expect(ran.length, pretty(reports)).toBe(1);
    expect(ran[0].status).toBe('success');
    const holder = ran[0].workflowId;
    const refused = reports.filter((r) => r !== ran[0]);
    for (const r of refused) {
      expect(r.status).toBe('failure');
      expect(r.reason).toBe(`refused: job "nightly" already has a run in flight: ${holder}`);
    }
    const scheduled = await reportOf(scheduledId);
    expect(scheduled.status, pretty(scheduled)).toBe('skipped');
    expect(scheduled.reason).toBe(`skipped: job "nightly" already has a run in flight: ${holder}`);
    console.log(
      `no-overlap: 5 manual starts + 1 scheduled → ran ${ran.length} (${holder}), refused ${refused.length}, skipped 1`,
    );

    // The job is free again once its run has ended.
    const after = await reportOf((await start('xcpb:nightly:manual-after')).workflowId);
    expect(after.status, pretty(after)).toBe('success');
    await stack.client.schedule.getHandle('xcpb:nightly:daily').delete();
  });
});
