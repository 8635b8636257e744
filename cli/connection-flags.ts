// The Temporal connection flags every command that talks to Temporal accepts, in one place, and the
// target they resolve to (client/connect.ts does the resolving: flags, then TEMPORAL_* variables,
// then the config's `temporal:` section; this module adds the CLI's own last resort, the address
// `xcpb server start` recorded in the state directory).
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
import type { TemporalConnectionConfig } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import { findRunningDevServer, stateDir } from '../server/dev-server';
import { UsageError } from './output';

export type { ConnectionFlags } from '../client/connect';

/** Commander turns `--tls-ca` into `tlsCa`: the flags as client/connect.ts names them. */
interface CommanderFlags {
  address?: string;
  namespace?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
  apiKeyFile?: string;
}

/** --address, --namespace, TLS and API key options on a command. */
export function withConnectionOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--address <host:port>',
        `Temporal frontend (env TEMPORAL_ADDRESS; default: the server \`xcpb server start\` runs, else ${DEFAULT_ADDRESS})`,
      ),
    )
    .addOption(
      new Option('--namespace <name>', 'Temporal namespace (env TEMPORAL_NAMESPACE, default "default")'),
    )
    .addOption(
      new Option(
        '--tls',
        'TLS to the frontend (env TEMPORAL_TLS; on by itself with any TLS setting or an API key)',
      ),
    )
    .addOption(new Option('--no-tls', 'plain gRPC even with TLS settings'))
    .addOption(new Option('--tls-ca <file>', "CA of the server's certificate (env TEMPORAL_TLS_CA)"))
    .addOption(new Option('--tls-cert <file>', 'client certificate, mTLS (env TEMPORAL_TLS_CERT)'))
    .addOption(new Option('--tls-key <file>', 'client key, mTLS (env TEMPORAL_TLS_KEY)'))
    .addOption(
      new Option(
        '--tls-server-name <name>',
        "name in the server's certificate (env TEMPORAL_TLS_SERVER_NAME)",
      ),
    )
    .addOption(
      new Option('--api-key-file <file>', 'file holding the API key (env TEMPORAL_API_KEY: the key itself)'),
    );
}

function asConnectionFlags(f: CommanderFlags & ConnectionFlags): ConnectionFlags {
  return {
    address: f.address,
    namespace: f.namespace,
    tls: f.tls,
    'tls-ca': f.tlsCa ?? f['tls-ca'],
    'tls-cert': f.tlsCert ?? f['tls-cert'],
    'tls-key': f.tlsKey ?? f['tls-key'],
    'tls-server-name': f.tlsServerName ?? f['tls-server-name'],
    'api-key-file': f.apiKeyFile ?? f['api-key-file'],
  };
}

/** The target of this command: flags, environment, config section, recorded dev server, default. */
export async function targetFromFlags(
  flags: CommanderFlags & ConnectionFlags,
  config?: TemporalConnectionConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TemporalTarget> {
  const f = asConnectionFlags(flags);
  const named = f.address ?? (env.TEMPORAL_ADDRESS || undefined) ?? config?.address;
  const recordedAddress = named ? undefined : (await findRunningDevServer(stateDir(env)))?.address;
  const target = resolveTarget({ flags: f, env, config, recordedAddress });
  lastTarget = target;
  return target;
}

export async function clientFromFlags(
  flags: CommanderFlags & ConnectionFlags,
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

/** The target the running command connected to, for error messages (cli/program.ts). */
export function currentTarget(): TemporalTarget | undefined {
  return lastTarget;
}
