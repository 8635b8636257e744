// Screenshots of the Temporal Web UI as a user sees a backup run: the workflow list, a run, and a
// failed VM. Runs the demo pool's job once with one VM's snapshot refused (a permanent XAPI error
// injected through the simulator's control API), then points headless Chromium (Debian `chromium`)
// at the UI of its own Temporal dev server.
//   npx tsx bench/ui-screenshots.ts [out-dir]      (default: ./ui-screenshots)
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { startBackupJob } from '../client/backup-client';
import { runReportOf } from '../client/run-result';
import { validateConfig } from '../core/config/validate';
import { freePort, startOwnedDevServer } from '../server/dev-server';
import { ensureTemporalCli } from '../server/temporal-cli';
import { startSimulator } from '../simulator';
import { connectWorkers, createWorkerSet } from '../workers/workers';

const exec = promisify(execFile);
const out = path.resolve(process.argv[2] ?? 'ui-screenshots');
const PASSWORD_ENV = 'XCPB_SCREENSHOT_PASSWORD';

async function screenshot(url: string, file: string): Promise<void> {
  // The UI is a single-page app: give it virtual time to fetch and render before the capture.
  await exec(
    'chromium',
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--hide-scrollbars',
      '--window-size=1600,1000',
      '--virtual-time-budget=15000',
      `--screenshot=${file}`,
      url,
    ],
    { timeout: 120_000 },
  );
  console.log(`${file}  ← ${url}`);
}

async function main(): Promise<void> {
  await mkdir(out, { recursive: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-ui-'));
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const uiPort = await freePort();
  const server = await startOwnedDevServer({ cli: await ensureTemporalCli(console.log), uiPort });
  const sim = await startSimulator({ scenario: 'demo', dataDir: path.join(dir, 'sim') });
  process.env[PASSWORD_ENV] = sim.pools[0].password;
  await mkdir(path.join(dir, 'backups'));
  const checked = validateConfig({
    pools: [{ id: 'demo', url: sim.pools[0].url, username: 'root', password: { env: PASSWORD_ENV } }],
    remotes: [{ id: 'nas', url: `file://${path.join(dir, 'backups')}` }],
    jobs: [
      {
        id: 'prod-nightly',
        mode: 'delta',
        vms: { pools: ['demo'], tags: ['prod'] },
        remotes: ['nas'],
        concurrency: 1,
        schedules: [{ id: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Paris', retention: { remote: 7 } }],
      },
    ],
  });
  if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
  const connection = await connectWorkers(server.address);
  const workers = await createWorkerSet({ config: checked.config, connection, namespace: 'default' });
  const running = workers.run();
  const client = new Client({ connection: await Connection.connect({ address: server.address }) });
  try {
    // The first VM's snapshot is refused for good: that VM fails, the other is backed up.
    await sim.pool('demo').control.injectFault({
      method: 'VM.snapshot',
      code: 'OPERATION_BLOCKED',
      params: ['ref', 'blocked by the demo'],
    });
    const handle = await startBackupJob(client, { config: checked.config, jobId: 'prod-nightly' });
    const report = await runReportOf(handle);
    const failed = report.vms.find((v) => v.status === 'failure');
    console.log(`run ${handle.workflowId}: ${report.status}; failed VM: ${failed?.vmName ?? 'none'}`);
    const runId = (await handle.describe()).runId;
    const ui = server.uiUrl ?? `http://127.0.0.1:${uiPort}`;
    const wf = (id: string, run: string) =>
      `${ui}/namespaces/default/workflows/${encodeURIComponent(id)}/${run}/history`;
    // Visibility is eventually consistent: let the list catch up.
    await new Promise((r) => setTimeout(r, 3_000));
    await screenshot(`${ui}/namespaces/default/workflows`, path.join(out, '1-workflow-list.png'));
    await screenshot(wf(handle.workflowId, runId), path.join(out, '2-run.png'));
    if (failed) {
      const child = await client.workflow.getHandle(failed.workflowId).describe();
      await screenshot(wf(failed.workflowId, child.runId), path.join(out, '3-failed-vm.png'));
    }
  } finally {
    workers.shutdown();
    await running;
    await connection.close();
    await client.connection.close();
    await sim.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
