// `xcpb worker --config <file>`: the main worker and the per-pool workers in one process, until
// SIGTERM / SIGINT (graceful: running activities finish or are handed back).
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load';
import { formatProblems } from '../core/config/validate';
import { installRuntime } from '../workers/runtime';
import { connectWorkers, createWorkerSet } from '../workers/workers';
import { connectionOptions, targetFromFlags } from './connection-flags';
import { UsageError } from './output';

export async function workerCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, pool: { type: 'string', multiple: true }, ...connectionOptions },
  });
  if (!values.config) throw new UsageError('usage: xcpb worker --config <file> [--pool <id> ...]');
  const loaded = await loadConfigFile(values.config);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  installRuntime({ handleSignals: false });
  const target = await targetFromFlags(values, loaded.config.temporal);
  const connection = await connectWorkers(target);
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
