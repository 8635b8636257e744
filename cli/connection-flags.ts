// The --address / --namespace flags every command that talks to Temporal accepts.
import { connectClient, temporalTarget } from '../client/connect';

export const connectionOptions = {
  address: { type: 'string' },
  namespace: { type: 'string' },
} as const;

export function clientFromFlags(values: { address?: string; namespace?: string }) {
  return connectClient(temporalTarget(values));
}
