import { parseArgs } from 'node:util';
import { startSimulator } from '../simulator/index';
import { passThrough, type Register, untilSignal } from './program';

export interface SimCliIo {
  out(text: string): void;
  err(text: string): void;
}

const stdio: SimCliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

const USAGE = `usage: xcpb sim --scenario <file|demo> [--port N] [--data-dir DIR]
  Runs simulated XCP-ng pools (XAPI over XML-RPC and JSON-RPC, disk transfers, control API at /_sim/).
  --scenario   a YAML/JSON scenario file, or "demo" (simulator/scenarios/demo.yaml)
  --port       port of the first pool, the next pools on the following ports (default: free ports)
  --data-dir   keep state and disks there, across restarts (default: a temporary folder)
`;

/** `xcpb sim`: starts the scenario's pools, prints their URLs, runs until SIGINT/SIGTERM (or `stop`). */
export async function simCommand(
  argv: string[],
  io: SimCliIo = stdio,
  stop: Promise<void> = untilSignal(),
): Promise<number> {
  let values: { scenario?: string; port?: string; 'data-dir'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        scenario: { type: 'string' },
        port: { type: 'string' },
        'data-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    io.err(`xcpb sim: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (!values.scenario) {
    io.err(`xcpb sim: --scenario is required\n${USAGE}`);
    return 2;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.err(`xcpb sim: --port must be a port number, got ${values.port}\n`);
    return 2;
  }
  let sim: Awaited<ReturnType<typeof startSimulator>>;
  try {
    sim = await startSimulator({ scenario: values.scenario, basePort: port, dataDir: values['data-dir'] });
  } catch (e) {
    io.err(`xcpb sim: ${(e as Error).message}\n`);
    return 1;
  }
  for (const p of sim.pools) {
    io.out(`pool ${p.id}: ${p.url}  (user ${p.username}, control API ${p.url}/_sim/)\n`);
  }
  io.out(
    values['data-dir']
      ? `state kept in ${values['data-dir']}\n`
      : 'state is temporary (use --data-dir to keep it)\n',
  );
  await stop;
  await sim.close();
  return 0;
}

export const registerSim: Register = (program) => {
  passThrough(
    program,
    'sim',
    'simulated XCP-ng pools (XAPI, disk transfers, control API at /_sim/) until Ctrl-C',
    USAGE,
    (argv) => simCommand(argv),
    'xcpb sim --scenario demo --port 9580',
    'xcpb sim --scenario my-pools.yaml --data-dir /var/tmp/sim',
  );
};
