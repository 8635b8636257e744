// The Temporal connection flags every command that talks to Temporal accepts, in one place.
import { type Command, Option } from 'commander';
import { connectClient, temporalTarget } from '../client/connect';

export interface ConnectionFlags {
  address?: string;
  namespace?: string;
}

/** --address / --namespace on a command. */
export function withConnectionOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--address <host:port>', 'Temporal frontend (env TEMPORAL_ADDRESS, default localhost:7233)'),
    )
    .addOption(
      new Option('--namespace <name>', 'Temporal namespace (env TEMPORAL_NAMESPACE, default "default")'),
    );
}

export function clientFromFlags(flags: ConnectionFlags) {
  return connectClient(temporalTarget(flags));
}
