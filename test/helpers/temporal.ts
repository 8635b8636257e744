// The Temporal server started by the global setup, for integration tests.
import { Client, Connection } from '@temporalio/client';
import { inject } from 'vitest';

export function temporalAddress(): string {
  const address = inject('temporalAddress');
  if (!address)
    throw new Error('no Temporal server: this test needs the global setup (unset XCPB_TEST_TEMPORAL)');
  return address;
}

export async function testClient(): Promise<Client> {
  const connection = await Connection.connect({ address: temporalAddress() });
  return new Client({ connection, namespace: 'default' });
}
