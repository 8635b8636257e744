// The Temporal server started by the global setup, for integration tests.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { inject } from 'vitest';
import { TEST_NAMESPACES } from '../setup/temporal-server';

export function temporalAddress(): string {
  const address = inject('temporalAddress');
  if (!address)
    throw new Error('no Temporal server: this test needs the global setup (unset XCPB_TEST_TEMPORAL)');
  return address;
}

export async function testClient(namespace = 'default'): Promise<Client> {
  const connection = await Connection.connect({ address: temporalAddress() });
  return new Client({ connection, namespace });
}

/** A namespace no other test file of this run uses (claimed with an atomic mkdir). */
export async function claimNamespace(): Promise<string> {
  for (const ns of TEST_NAMESPACES) {
    try {
      await mkdir(path.join(inject('namespaceClaims'), `claim-${ns}`));
      return ns;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new Error(
    `more test files need a namespace than the ${TEST_NAMESPACES.length} the global setup creates`,
  );
}
