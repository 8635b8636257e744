// The Temporal server started by the global setup, for integration tests.
import { execFile } from 'node:child_process';
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

/** Runs the real `temporal` CLI against the test server (`--address` added), as a user would. */
export function temporalCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      inject('temporalCli'),
      [...args, '--address', temporalAddress()],
      { timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** `temporal workflow list --query …` as JSON: each workflow's id and status (e.g. "Failed"). */
export async function listWorkflows(
  namespace: string,
  query: string,
): Promise<{ workflowId: string; status: string }[]> {
  const r = await temporalCli(['workflow', 'list', '--namespace', namespace, '--query', query, '-o', 'json']);
  if (r.code !== 0) throw new Error(`temporal workflow list failed: ${r.stderr}`);
  const rows = JSON.parse(r.stdout || '[]') as { execution: { workflowId: string }; status: string }[];
  return rows.map((w) => ({
    workflowId: w.execution.workflowId,
    status: String(w.status).replace(/^WORKFLOW_EXECUTION_STATUS_/, ''),
  }));
}
