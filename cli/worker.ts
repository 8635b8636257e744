// `xcpb worker --config <file>`: the main worker and the per-pool workers in one process, until
// SIGTERM / SIGINT (graceful: running activities finish or are handed back). Before polling, it
// checks what would otherwise fail later or silently: the --pool ids exist, every served pool's
// secret resolves, no other live worker serves one of its pools (exit 2 for each), and it logs in to
// each pool (a failed login is one line; the pool is still served, its tasks retry the login).
import { createPoolRegistry } from '../activities/pools';
import { loadConfigFile } from '../config/load';
import { resolveSecret } from '../config/secrets';
import type { PoolConfig } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import { missingSearchAttributes } from '../server/cluster-setup';
import { freePort } from '../server/dev-server';
import { ProductMetrics, serveMetrics } from '../workers/metrics';
import { currentOwner, describeOwner } from '../workers/pool-ownership';
import { installRuntime } from '../workers/runtime';
import { connectWorkers, createWorkerSet } from '../workers/workers';
import { type ConnectionFlags, targetFromFlags, withConnectionOptions } from './connection-flags';
import { type Register, run, withExamples } from './program';

const LOGIN_TIMEOUT_MS = 20_000;
const say = (line: string) => process.stderr.write(`${line}\n`);

interface WorkerFlags extends ConnectionFlags {
  config: string;
  pool?: string[];
  metrics?: string;
}

export const registerWorker: Register = (program) => {
  withExamples(
    withConnectionOptions(
      program
        .command('worker')
        .description(
          'the main worker and the per-pool workers in one process, until SIGTERM / Ctrl-C (graceful); refuses a pool another live worker serves',
        )
        .requiredOption('-c, --config <file>', 'the config file (pools, remotes; secrets by reference)')
        .option('--pool <id...>', "serve only these pools' task queues (one worker process per pool)")
        .option(
          '--metrics <host:port>',
          "serve Prometheus metrics (the product's and the SDK's) at /metrics",
        ),
    ),
    'xcpb worker --config /etc/xcpb/prod.yaml',
    'xcpb worker -c prod.yaml --pool lab --pool dr',
    'xcpb worker -c prod.yaml --metrics 0.0.0.0:9464',
  ).action(run(worker));
};

async function worker(values: WorkerFlags): Promise<number> {
  const loaded = await loadConfigFile(values.config);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  const { config } = loaded;
  const unknown = (values.pool ?? []).filter((id) => !config.pools.some((p) => p.id === id));
  if (unknown.length > 0) {
    const known = config.pools.map((p) => p.id).join(', ') || 'none';
    for (const id of unknown) say(`xcpb worker: unknown pool "${id}" (pools in ${values.config}: ${known})`);
    return 2;
  }
  const served = config.pools.filter((p) => !values.pool || values.pool.includes(p.id));
  const secretProblems = await unresolvedSecrets(served);
  if (secretProblems.length > 0) {
    for (const problem of secretProblems) say(`xcpb worker: ${problem}`);
    return 2;
  }

  // With --metrics, the SDK's own metrics go to a private local port that our endpoint serves too.
  const sdkMetricsPort = values.metrics ? await freePort() : undefined;
  installRuntime({
    handleSignals: false,
    telemetryOptions: sdkMetricsPort
      ? { metrics: { prometheus: { bindAddress: `127.0.0.1:${sdkMetricsPort}` } } }
      : undefined,
  });
  const target = await targetFromFlags(values, config.temporal);
  const connection = await connectWorkers(target);
  // Workflows set these on every run: without them each run would fail at its first step.
  const missing = await missingSearchAttributes(
    (req) => connection.operatorService.listSearchAttributes(req),
    target.namespace,
  );
  if (missing.length > 0) {
    say(
      `xcpb worker: namespace "${target.namespace}" has no search attribute ${missing[0]}: run \`xcpb server setup --namespace ${target.namespace}\``,
    );
    await connection.close();
    return 1;
  }
  let refused = false;
  for (const pool of served) {
    const owner = await currentOwner(connection, target.namespace, pool.id);
    if (owner) {
      say(`xcpb worker: ${describeOwner(pool.id, owner, Date.now())}`);
      refused = true;
    }
  }
  if (refused) {
    await connection.close();
    return 2;
  }

  // Every configured pool stays known (main-queue activities such as VM selection may need any);
  // this process logs in to, and polls the queues of, the pools it serves.
  const pools = createPoolRegistry(config.pools);
  await Promise.all(served.map((pool) => logIn(pools, pool)));
  const metrics = values.metrics ? new ProductMetrics() : undefined;
  const set = await createWorkerSet({
    config,
    connection,
    namespace: target.namespace,
    poolIds: served.map((p) => p.id),
    pools,
    metrics,
  });
  const metricsServer =
    metrics && values.metrics
      ? await serveMetrics(values.metrics, metrics, `http://127.0.0.1:${sdkMetricsPort}/metrics`)
      : undefined;
  if (metricsServer) say(`metrics: ${metricsServer.url}`);
  const stop = () => set.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write(
    `worker ready: ${set.workers.length} task queues on ${target.address} (${target.namespace}); ` +
      `pools: ${served.map((p) => p.id).join(', ') || 'none'}\n`,
  );
  await set.run();
  await metricsServer?.close();
  await connection.close();
  process.stdout.write('worker stopped\n');
  return 0;
}

async function unresolvedSecrets(pools: PoolConfig[]): Promise<string[]> {
  const problems: string[] = [];
  for (const pool of pools) {
    await resolveSecret(pool.password, `pool "${pool.id}": password`).catch((err: Error) =>
      problems.push(err.message),
    );
  }
  return problems;
}

async function logIn(pools: ReturnType<typeof createPoolRegistry>, pool: PoolConfig): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      pools.client(pool.id),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${LOGIN_TIMEOUT_MS / 1000} s`)),
          LOGIN_TIMEOUT_MS,
        );
      }),
    ]);
    say(`pool ${pool.id}: logged in to ${pool.url}`);
  } catch (err) {
    const reason = ((err as Error).message ?? String(err)).replace(/\s+/g, ' ');
    say(`pool ${pool.id}: login to ${pool.url} failed: ${reason} (its tasks retry the login)`);
  } finally {
    clearTimeout(timer);
  }
}
