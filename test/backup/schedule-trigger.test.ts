// A schedule made by `xcpb apply`, fired as `temporal schedule trigger` does, runs a real backup:
// the schedule's action input is exactly what backupJob needs, and the run carries its search
// attributes.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runReportOf } from '../../client/run-result';
import { applyPlan, planFromConfig } from '../../schedules/apply';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { eventually } from '../helpers/eventually';
import { temporalAddress } from '../helpers/temporal';

const exec = promisify(execFile);
let stack: BackupStack;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'sched-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '1GiB', default: true }],
          vms: [
            {
              name: 'app',
              tags: ['prod'],
              power: 'Running',
              disks: [{ name: 'app root', size: '4MiB', content: { type: 'random', seed: 9, blocks: 1 } }],
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
        schedules: [{ id: 'daily', cron: '0 3 * * *', timezone: 'Europe/Paris', retention: { remote: 2 } }],
      },
    ],
  });
});
afterAll(() => stack?.close());

describe('schedules run backups', () => {
  it('temporal schedule trigger starts a run that backs the VMs up', async () => {
    await applyPlan(stack.client, await planFromConfig(stack.client, stack.config));
    await exec(inject('temporalCli'), [
      'schedule',
      'trigger',
      '--schedule-id',
      'xcpb:nightly:daily',
      '--address',
      temporalAddress(),
      '--namespace',
      stack.namespace,
    ]);
    const workflowId = await eventually(async () => {
      const d = await stack.client.schedule.getHandle('xcpb:nightly:daily').describe();
      const action = d.info.recentActions.at(-1)?.action;
      expect(action?.type).toBe('startWorkflow');
      return action!.type === 'startWorkflow' ? action!.workflow.workflowId : '';
    });
    expect(workflowId).toMatch(/^xcpb:nightly:daily-/);
    const report = await runReportOf(stack.client.workflow.getHandle(workflowId));
    expect(report).toMatchObject({ status: 'success', jobId: 'nightly', scheduleId: 'daily', mode: 'delta' });
    expect(report.vms.map((v) => [v.vmName, v.status])).toEqual([['app', 'success']]);

    const described = await stack.client.workflow.getHandle(workflowId).describe();
    const sa = described.searchAttributes as Record<string, unknown[]>;
    expect(sa.XcpbJobId).toEqual(['nightly']);
    expect(sa.XcpbScheduleId).toEqual(['daily']);
    expect(sa.XcpbOutcome).toEqual(['success']);
    expect(sa.XcpbVmUuids).toEqual([report.vms[0].vmUuid]);
    expect(sa.XcpbPoolIds).toEqual(['lab']);
  });
});
