// Starting a backup run from any program, with nothing but @temporalio/client (no import of this
// project): the start contract is the JSON of docs/schemas/backup-job-input.json.
//   TEMPORAL_ADDRESS=127.0.0.1:7233 npx tsx examples/start-plain.ts
// Workers must be running (`xcpb worker --config <file>`, or `npm start` for the demo pool).
import { ApplicationFailure, Client, Connection, WorkflowFailedError } from '@temporalio/client';

const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? 'localhost:7233' });
const client = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
try {
  const handle = await client.workflow.start('backupJob', {
    taskQueue: 'xcpb',
    workflowId: `xcpb:x:manual-${new Date().toISOString()}`,
    // Only job.id, job.mode, job.vms and job.remotes are required; the rest gets the config's defaults.
    args: [{ job: { id: 'x', mode: 'delta', vms: { pools: ['demo'] }, remotes: ['local'] } }],
  });
  console.log(`started ${handle.workflowId}`);
  // The run result (docs/schemas/run-result.json): counts, the first failed VMs, where the full
  // report is stored, and every VM's report when they are few (a big run: read `stored`).
  let report: {
    status: string;
    counts: { vms: number; failure: number };
    vms?: { vmName: string; status: string }[];
    stored?: { remoteId?: string; path: string };
  };
  try {
    report = await handle.result(); // Completed: every VM succeeded or was skipped
  } catch (err) {
    // Failed: a VM failed (XcpbRunFailed, the report in the details) or the input was refused
    // (XcpbInvalidInput, naming the field); anything else (cancelled, terminated) is rethrown.
    const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
    if (!(cause instanceof ApplicationFailure) || cause.type !== 'XcpbRunFailed') throw err;
    report = cause.details?.[0] as typeof report;
  }
  for (const vm of report.vms ?? []) console.log(`${vm.status.padEnd(8)} ${vm.vmName}`);
  if (!report.vms)
    console.log(
      `${report.counts.vms} VMs, ${report.counts.failure} failed; full report: ${report.stored?.path} ` +
        `on remote ${report.stored?.remoteId ?? "(the worker's state folder)"}`,
    );
  process.exitCode = report.status === 'failure' ? 1 : 0;
} finally {
  await connection.close();
}
