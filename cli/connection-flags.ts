// The Temporal connection flags every command that talks to Temporal accepts, and the target they
// resolve to (client/connect.ts does the resolving; this module adds the CLI's own last resort: the
// address `xcpb server start` recorded in the state directory).
import type { Client } from '@temporalio/client';
import {
  type ConnectionFlags,
  connectClient,
  DEFAULT_ADDRESS,
  resolveTarget,
  type TemporalTarget,
} from '../client/connect';
import { loadConfigFile } from '../config/load';
import type { TemporalConnectionConfig } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import { findRunningDevServer, stateDir } from '../server/dev-server';
import { UsageError } from './output';

export const connectionOptions = {
  address: { type: 'string' },
  namespace: { type: 'string' },
  tls: { type: 'boolean' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-server-name': { type: 'string' },
  'api-key-file': { type: 'string' },
} as const;

export const CONNECTION_HELP = [
  'Temporal connection (flag, else environment variable, else the config file\'s "temporal:" section):',
  `  --address host:port       TEMPORAL_ADDRESS (default: the server \`xcpb server start\` runs, else ${DEFAULT_ADDRESS})`,
  '  --namespace name          TEMPORAL_NAMESPACE (default "default")',
  '  --tls                     TEMPORAL_TLS (on by itself with any TLS setting or an API key)',
  "  --tls-ca file             TEMPORAL_TLS_CA: the CA of the server's certificate",
  '  --tls-cert file           TEMPORAL_TLS_CERT: client certificate (mTLS)',
  '  --tls-key file            TEMPORAL_TLS_KEY: client key (mTLS)',
  "  --tls-server-name name    TEMPORAL_TLS_SERVER_NAME: the name in the server's certificate",
  '  --api-key-file file       TEMPORAL_API_KEY (the key itself)',
].join('\n');

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
  if (!file) return undefined;
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) throw new UsageError(formatProblems(loaded.problems));
  return loaded.config.temporal;
}

let lastTarget: TemporalTarget | undefined;

/** The target the running command connected to, for error messages (cli/main.ts). */
export function currentTarget(): TemporalTarget | undefined {
  return lastTarget;
}
