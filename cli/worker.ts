// `xcpb worker --config <file>`: the main worker and the per-pool workers in one process, until
// SIGTERM / SIGINT (graceful: running activities finish or are handed back).
import { temporalTarget } from '../client/connect';
import { loadConfigFile } from '../config/load';
import { formatProblems } from '../core/config/validate';
import { installRuntime } from '../workers/runtime';
import { connectWorkers, createWorkerSet } from '../workers/workers';
import { type ConnectionFlags, withConnectionOptions } from './connection-flags';
import { type Register, run, withExamples } from './program';

export const registerWorker: Register = (program) => {
  withExamples(
    withConnectionOptions(
      program
        .command('worker')
        .description(
          'the main worker and the per-pool workers in one process, until SIGTERM / Ctrl-C (graceful)',
        )
        .requiredOption('-c, --config <file>', 'the config file (pools, remotes; secrets by reference)')
        .option('--pool <id...>', "serve only these pools' task queues (one worker process per pool)"),
    ),
    'xcpb worker --config /etc/xcpb/prod.yaml',
    'xcpb worker -c prod.yaml --pool lab --pool dr',
  ).action(run(worker));
};

async function worker(values: ConnectionFlags & { config: string; pool?: string[] }): Promise<number> {
  const loaded = await loadConfigFile(values.config);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  installRuntime({ handleSignals: false });
  const target = temporalTarget(values);
  const connection = await connectWorkers(target.address);
  const set = await createWorkerSet({
    config: loaded.config,
    connection,
    namespace: target.namespace,
    poolIds: values.pool,
  });
  const stop = () => set.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write(
    `worker ready: ${set.workers.length} task queues on ${target.address} (${target.namespace})\n`,
  );
  await set.run();
  await connection.close();
  process.stdout.write('worker stopped\n');
  return 0;
}
