// A Temporal client for the CLI and for users' programs, with Temporal's own conventions:
// TEMPORAL_ADDRESS (default localhost:7233) and TEMPORAL_NAMESPACE (default "default").
import { Client, Connection } from '@temporalio/client';

export interface TemporalTarget {
  address: string;
  namespace: string;
}

export function temporalTarget(
  flags: { address?: string; namespace?: string } = {},
  env: NodeJS.ProcessEnv = process.env,
): TemporalTarget {
  return {
    address: flags.address ?? env.TEMPORAL_ADDRESS ?? 'localhost:7233',
    namespace: flags.namespace ?? env.TEMPORAL_NAMESPACE ?? 'default',
  };
}

export async function connectClient(target: TemporalTarget): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: target.address, connectTimeout: '5s' });
  } catch (err) {
    throw new Error(
      `cannot reach the Temporal server at ${target.address} (${(err as Error).message}); ` +
        'start one with `xcpb server start` or set TEMPORAL_ADDRESS',
    );
  }
  return new Client({ connection, namespace: target.namespace });
}
