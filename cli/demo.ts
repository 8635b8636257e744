// `xcpb demo [--once] [--port N]` (= `npm start`): the whole product on this machine, from a fresh
// clone: a Temporal dev server (detached, kept), the simulator's demo pool, a local remote and the
// workers in this process; applies examples/config.yaml, runs `prod-nightly` twice (a full, then a
// delta after the guests wrote data) and stays up for the Web UI until Ctrl-C.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { InvalidArgumentError } from 'commander';
import { type VmRecord, vmDisks } from '../activities/xapi-records';
import { startBackupJob } from '../client/backup-client';
import { connectClient, temporalTarget } from '../client/connect';
import { loadConfigFile } from '../config/load';
import type { Config } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import type { RunReport } from '../core/run-report';
import { applyPlan, planFromConfig } from '../schedules/apply';
import { configNameFor, describePlan } from '../schedules/plan';
import { startDetachedDevServer, stateDir } from '../server/dev-server';
import { ensureTemporalCli } from '../server/temporal-cli';
import { type SimPool, type Simulator, startSimulator } from '../simulator/index';
import { connectWorkers, createWorkerSet } from '../workers/workers';
import { connectXapi } from '../xapi';
import { type ConnectionFlags, withConnectionOptions } from './connection-flags';
import { bold, dim, terminalStyle } from './output';
import { type Register, run, untilSignal, withExamples } from './program';
import { exportKind, formatReportTree } from './report-format';
import { followRun, progressPrinter, runFailed } from './run';
import { localZone, zoneInConfig } from './zones';

export const EXAMPLE_CONFIG = path.resolve(import.meta.dirname, '../examples/config.yaml');
const DEMO_JOB = 'prod-nightly';
const DEMO_POOL = 'demo';
const DEFAULT_SIM_PORT = 9580; // the port examples/config.yaml names
const PASSWORD_ENV = 'XCPB_DEMO_PASSWORD'; // the variable examples/config.yaml references

const say = (line = '') => process.stdout.write(`${line}\n`);

export const registerDemo: Register = (program) => {
  withExamples(
    withConnectionOptions(
      program
        .command('demo')
        .description(
          'the whole product on this machine: Temporal dev server, simulated pool, local remote, workers; two runs, then the Web UI',
        )
        .option('--once', 'stop after the two runs')
        .option('--port <n>', 'port of the simulated pool (0: any free port)', portNumber),
    ),
    'xcpb demo',
    'xcpb demo --once --port 0',
  ).action(run(demo));
};

function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('must be a port number (0: any free port)');
  return n;
}

async function demo(values: ConnectionFlags & { once?: boolean; port?: number }): Promise<number> {
  const port = values.port;
  const dir = stateDir();

  const temporal = await temporalForDemo(values, dir);
  const sim = await startDemoSimulator(path.join(dir, 'sim'), port);
  const stops: (() => Promise<void>)[] = [() => sim.close()];
  try {
    const pool = sim.pool(DEMO_POOL);
    say(`simulator: pool ${pool.id} at ${pool.url} (state in ${path.join(dir, 'sim')})`);
    const backups = path.join(dir, 'backups');
    await mkdir(backups, { recursive: true });
    const config = await demoConfig(pool.url, backups);
    // The worker resolves the pool's password reference from its environment, as in production.
    process.env[PASSWORD_ENV] = pool.password;

    // Errors only: the demo's output is the runs and their reports, not worker chatter.
    Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
    const connection = await connectWorkers(temporal.address);
    const workers = await createWorkerSet({ config, connection, namespace: temporal.namespace });
    const running = workers.run();
    stops.unshift(async () => {
      workers.shutdown();
      await running;
      await connection.close();
    });
    say(`worker: ${workers.workers.length} task queues on ${temporal.address} (${temporal.namespace})`);

    const client = await connectClient(temporal);
    stops.unshift(() => client.connection.close());
    const plan = await planFromConfig(client, config, { configName: configNameFor(config, EXAMPLE_CONFIG) });
    await applyPlan(client, plan);
    say(
      `schedules from ${path.relative(process.cwd(), EXAMPLE_CONFIG)}: ${describePlan(plan).join('; ') || 'up to date'}`,
    );

    const first = await runAndShow(client, config, 1);
    const written = await writeGuestData(pool, first);
    say(dim(`the guests wrote ${written} blocks of new data into their disks`));
    const second = await runAndShow(client, config, 2);

    say();
    say(bold(`backups in ${backups}`));
    if (temporal.uiUrl) {
      say(bold(`Web UI: ${temporal.uiUrl}/namespaces/${temporal.namespace}/workflows`));
    } else say(bold(`see the runs in the Web UI of the Temporal server at ${temporal.address}`));
    say(`try: npx xcpb runs   npx xcpb runs show ${second.workflowId}   npx xcpb schedules`);
    if (!values.once) {
      say('running until Ctrl-C (the schedules keep firing while the worker is up)');
      await untilSignal();
    }
    return runFailed(first) || runFailed(second) ? 1 : 0;
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
    say('worker and simulator stopped');
    if (temporal.startedHere)
      say(`the Temporal server keeps running (state in ${dir}); stop it with \`npx xcpb server stop\``);
  }
}

interface DemoTemporal {
  address: string;
  namespace: string;
  uiUrl?: string;
  startedHere: boolean;
}

/** The server named by --address / TEMPORAL_ADDRESS, or else our detached dev server. */
async function temporalForDemo(
  flags: { address?: string; namespace?: string },
  dir: string,
): Promise<DemoTemporal> {
  const target = temporalTarget(flags);
  if (flags.address || process.env.TEMPORAL_ADDRESS) return { ...target, startedHere: false };
  const cli = await ensureTemporalCli((line) => say(dim(`[temporal] ${line}`)));
  const server = await startDetachedDevServer(cli, dir);
  say(
    `Temporal: ${server.address} (${server.alreadyRunning ? 'already running' : 'started'}, state in ${dir})`,
  );
  return { address: server.address, namespace: target.namespace, uiUrl: server.uiUrl, startedHere: true };
}

/** The demo pool on the port the example config names, or on a free port when that one is taken
 * (or when `--port 0` asks for it); an explicit --port is used as given. */
async function startDemoSimulator(dataDir: string, port: number | undefined): Promise<Simulator> {
  try {
    return await startSimulator({ scenario: 'demo', dataDir, basePort: port ?? DEFAULT_SIM_PORT });
  } catch (err) {
    if (port !== undefined || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    say(dim(`port ${DEFAULT_SIM_PORT} is taken: the simulator takes a free port`));
    return startSimulator({ scenario: 'demo', dataDir, basePort: 0 });
  }
}

/** examples/config.yaml pointed at this simulator and at a remote in the state directory (no root). */
async function demoConfig(poolUrl: string, backupsDir: string): Promise<Config> {
  const loaded = await loadConfigFile(EXAMPLE_CONFIG);
  if (!loaded.ok) throw new Error(`${EXAMPLE_CONFIG}:\n${formatProblems(loaded.problems)}`);
  const { config } = loaded;
  return {
    ...config,
    pools: config.pools.map((p) => (p.id === DEMO_POOL ? { ...p, url: poolUrl } : p)),
    remotes: config.remotes.map((r) => ({ ...r, url: `file://${backupsDir}` })),
  };
}

async function runAndShow(client: Client, config: Config, nth: number): Promise<RunReport> {
  say();
  const handle = await startBackupJob(client, { config, jobId: DEMO_JOB });
  say(bold(`run ${nth} of ${DEMO_JOB}: ${handle.workflowId}`));
  const { report } = await followRun(client, handle.workflowId, progressPrinter(process.stdout));
  say(bold(`run ${nth}: ${exportKind(report) ?? 'no'} backup, ${report.status}`));
  say(formatReportTree(report, terminalStyle, { timeZone: zoneInConfig(config, report) ?? localZone() }));
  return report;
}

/** Changes a few blocks of every disk the run exported, as running guests would. */
/** The guests write new data into every disk the run backed up (found through XAPI, as a user would). */
async function writeGuestData(pool: SimPool, report: RunReport): Promise<number> {
  const xapi = await connectXapi({ url: pool.url, username: pool.username, password: pool.password });
  const vdis: string[] = [];
  try {
    for (const vm of report.vms.filter((v) => v.status === 'success')) {
      const ref = await xapi.call<string>('VM.get_by_uuid', vm.vmUuid);
      const record = await xapi.getRecord<VmRecord>('VM', ref);
      for (const d of await vmDisks(xapi, record)) vdis.push(d.vdi.uuid);
    }
  } finally {
    await xapi.logout();
  }
  let blocks = 0;
  for (const vdi of vdis) {
    blocks += (await pool.control.writeRandomBlocks(vdi, { count: 2, seed: `${vdi}-${Date.now()}` })).length;
  }
  return blocks;
}
