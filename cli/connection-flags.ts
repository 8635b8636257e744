// The Temporal connection flags every command that talks to Temporal accepts, and the target they
// resolve to (client/connect.ts does the resolving; this module adds the CLI's own last resort: the
// address `xcpb server start` recorded in the state directory).
import type { Client } from '@temporalio/client';
import { type Command, Option } from 'commander';
import {
  type ConnectionFlags,
  connectClient,
  DEFAULT_ADDRESS,
  resolveTarget,
  type TemporalTarget,
} from '../client/connect';
import { loadConfigFile } from '../config/load';
import type { Config, TemporalConnectionConfig } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import { findRunningDevServer, stateDir } from '../server/dev-server';
import { UsageError } from './output';

export type { ConnectionFlags } from '../client/connect';

/** The flags of a command that has no config file of its own: --config names one for its section. */
export interface ConnectionAndConfigFlags extends ConnectionFlags {
  config?: string;
}

/**
 * The connection flags on a command: flag, else TEMPORAL_* variable, else the config file's
 * `temporal:` section. `configFlag` adds `-c, --config <file>` to commands that otherwise take no
 * config, so they can read the connection from it too.
 */
export function withConnectionOptions(cmd: Command, o: { configFlag?: boolean } = {}): Command {
  if (o.configFlag)
    cmd.option(
      '-c, --config <file>',
      'take the Temporal connection from this config file\'s "temporal:" section',
    );
  const options: [string, string][] = [
    [
      '--address <host:port>',
      `Temporal frontend (env TEMPORAL_ADDRESS; default: the server \`xcpb server start\` runs, else ${DEFAULT_ADDRESS})`,
    ],
    ['--namespace <name>', 'Temporal namespace (env TEMPORAL_NAMESPACE, default "default")'],
    ['--tls', 'TLS to the frontend (env TEMPORAL_TLS; on by itself with any TLS setting or an API key)'],
    ['--no-tls', 'plain gRPC even with TLS settings (env TEMPORAL_TLS=false)'],
    ['--tls-ca <file>', "CA of the server's certificate (env TEMPORAL_TLS_CA)"],
    ['--tls-cert <file>', 'client certificate, mTLS (env TEMPORAL_TLS_CERT)'],
    ['--tls-key <file>', 'client key, mTLS (env TEMPORAL_TLS_KEY)'],
    ['--tls-server-name <name>', "the name in the server's certificate (env TEMPORAL_TLS_SERVER_NAME)"],
    ['--api-key-file <file>', 'file holding the API key (env TEMPORAL_API_KEY: the key itself)'],
  ];
  for (const [flags, description] of options)
    cmd.addOption(new Option(flags, description).helpGroup('Temporal connection:'));
  return cmd;
}

/** The target of this command: flags, environment, config section, recorded dev server, default. */
export async function targetFromFlags(
  flags: ConnectionFlags,
  config?: TemporalConnectionConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TemporalTarget> {
  const named = flags.address ?? (env.TEMPORAL_ADDRESS || undefined) ?? config?.address;
  const recordedAddress = named ? undefined : (await findRunningDevServer(stateDir(env)))?.address;
  const target = resolveTarget({ flags, env, config, recordedAddress });
  lastTarget = target;
  return target;
}

export async function clientFromFlags(
  flags: ConnectionFlags,
  config?: TemporalConnectionConfig,
): Promise<Client> {
  return connectClient(await targetFromFlags(flags, config));
}

/** The `temporal:` section of a config file named only for it (`xcpb runs --config <file>`). */
export async function temporalSectionOf(
  file: string | undefined,
): Promise<TemporalConnectionConfig | undefined> {
  return (await optionalConfig(file))?.temporal;
}

/** The config of an optional `--config` (its remotes hold the full reports of big runs). */
export async function optionalConfig(file: string | undefined): Promise<Config | undefined> {
  if (!file) return undefined;
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) throw new UsageError(formatProblems(loaded.problems));
  return loaded.config;
}

let lastTarget: TemporalTarget | undefined;

/**
 * An error of a namespace `xcpb server setup` has not prepared, in one line naming the setup; undefined
 * for any other error, or when the command did not talk to Temporal.
 */
export async function explainSetupFailure(err: unknown): Promise<string | undefined> {
  if (!lastTarget) return undefined;
  const { explainSetupError } = await import('../client/setup-errors');
  return explainSetupError(err, lastTarget.namespace);
}
