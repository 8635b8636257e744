// `xcpb worker --metrics host:port`: after real runs (two delta backups whose retention merges, and a
// restore), one scrape shows the product's metrics with job and VM labels, equal to what the run
// reports say, and the Temporal SDK's own metrics on the same endpoint.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../core/run-report';
import { MAIN_QUEUE } from '../../core/task-queues';
import { freePort } from '../../server/dev-server';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { repoRoot } from '../helpers/cli';
import { listJson } from '../helpers/remote-files';
import { stopAllWorkerProcesses, WorkerProcess } from '../helpers/worker-process';

let stack: BackupStack;
let worker: WorkerProcess;
let url: string;

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'metrics-test-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '1GiB', default: true }],
          vms: [
            {
              name: 'app',
              tags: ['prod'],
              power: 'Running' as const,
              disks: [
                { name: 'root', size: '8MiB', content: { type: 'random' as const, seed: 5, blocks: 3 } },
              ],
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
        schedules: [{ id: 'daily', cron: '0 3 * * *', retention: { remote: 1, snapshot: 1 } }],
      },
    ],
    workers: false,
  });
  const port = await freePort();
  worker = await WorkerProcess.start(stack, { args: ['--metrics', `127.0.0.1:${port}`] });
  url = `http://127.0.0.1:${port}/metrics`;
});
afterAll(async () => {
  await stopAllWorkerProcesses();
  await stack?.close();
});

/** `name{labels} value` lines of a scrape, as a map from the series to its value. */
function series(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('worker metrics', () => {
  it('a scrape after runs shows bytes, outcomes, last success, durations and merges per job and VM', async () => {
    expect(worker.output).toContain(`metrics: ${url}`);
    const vm = await stack.vm('app');
    const reports: RunReport[] = [await stack.runJob('nightly')];
    await stack.pool().control.writeRandomBlocks(vm.disks[0].uuid, { count: 2, seed: 'second' });
    reports.push(await stack.runJob('nightly'));
    for (const r of reports) expect(r.status, JSON.stringify(r)).toBe('success');
    const ts = (await listJson(stack.remoteDir('nas'), vm.uuid)).at(-1)!.replace('.json', '');
    await stack.client.workflow.execute('restoreVm', {
      taskQueue: MAIN_QUEUE,
      workflowId: `xcpb:restore:metrics-${Date.now()}`,
      args: [{ backupId: `nas:${vm.uuid}/${ts}`, poolId: 'lab', sr: 'Local' }],
    });

    const scrape = await (await fetch(url)).text();
    const s = series(scrape);
    const labels = `job_id="nightly",vm="app",vm_uuid="${vm.uuid}"`;
    expect(s.get(`xcpb_vm_backups_total{${labels},outcome="success"}`), scrape).toBe(2);
    const lastEnd = reports[1].vms[0].end!;
    expect(s.get(`xcpb_vm_last_success_timestamp_seconds{${labels}}`)).toBeCloseTo(
      Date.parse(lastEnd) / 1000,
      3,
    );
    const written = reports
      .flatMap((r) => r.vms[0].steps)
      .filter((st) => st.name === 'transfer' && st.target === 'nas')
      .reduce((sum, st) => sum + (st.bytes ?? 0), 0);
    expect(written).toBeGreaterThan(0);
    expect(s.get('xcpb_bytes_written_total{job_id="nightly",target="nas"}')).toBe(written);
    expect(s.get('xcpb_vm_backup_duration_seconds_count{job_id="nightly"}')).toBe(2);
    expect(s.get('xcpb_merges_total{remote="nas"}')).toBeGreaterThanOrEqual(1);
    expect(s.get('xcpb_merge_duration_seconds_count{remote="nas"}')).toBe(
      s.get('xcpb_merges_total{remote="nas"}'),
    );
    expect(s.get('xcpb_restore_duration_seconds_count{outcome="success"}')).toBe(1);
    // The SDK's own metrics, from the same endpoint.
    expect(scrape).toMatch(/^temporal_\w+/m);

    // The shipped dashboard and alerts use only metrics the worker serves.
    const types = new Set([...scrape.matchAll(/^# TYPE (\w+) /gm)].map((m) => m[1]));
    for (const file of ['deploy/grafana/dashboards/xcp-backup.json', 'deploy/prometheus/alerts.yml']) {
      const text = await readFile(path.join(repoRoot, file), 'utf8');
      const used = new Set([...text.matchAll(/\b(xcpb_\w+?)(_bucket|_sum|_count)?\b/g)].map((m) => m[1]));
      expect(used.size, file).toBeGreaterThan(0);
      for (const name of used) expect(types, `${file} uses ${name}`).toContain(name);
    }
    expect(types, 'the SDK metric the dashboard shows').toContain('temporal_worker_task_slots_available');
  });
});
