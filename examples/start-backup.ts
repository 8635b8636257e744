// Your own program starting a backup run and printing its report, through the typed client.
//   TEMPORAL_ADDRESS=127.0.0.1:7233 npx tsx examples/start-backup.ts examples/config.yaml prod-nightly
// Workers must be running (`xcpb worker --config <file>`, or `npm start`). In your project, import
// from 'xcp-backup' instead of '../index'.
import {
  connectClient,
  formatProblems,
  formatReportTree,
  getRunReport,
  loadConfigFile,
  RunInFlightError,
  resolveTarget,
  runReportOf,
  startBackupJob,
} from '../index';

const [configFile = 'examples/config.yaml', jobId = 'prod-nightly'] = process.argv.slice(2);

const loaded = await loadConfigFile(configFile);
if (!loaded.ok) {
  console.error(formatProblems(loaded.problems));
  process.exit(2);
}
// TEMPORAL_* variables, else the config's `temporal:` section (address, namespace, TLS, API key).
const client = await connectClient(resolveTarget({ config: loaded.config.temporal }));
try {
  const handle = await startBackupJob(client, { config: loaded.config, jobId });
  console.log(`started ${handle.workflowId}`);
  // Completed or Failed, the run's complete report: carried by the result for a small run, else
  // read where the run stored it (its first remote, opened with the config); a cancelled run's
  // report as it stood: getRunReport(client, handle.workflowId, { config }).
  const config = loaded.config;
  const report = await runReportOf(handle, { config }).catch(() =>
    getRunReport(client, handle.workflowId, { config }),
  );
  console.log(formatReportTree(report));
  process.exitCode = report.status === 'failure' ? 1 : 0;
} catch (err) {
  if (!(err instanceof RunInFlightError)) throw err;
  console.error(err.message);
  process.exitCode = 1;
} finally {
  await client.connection.close();
}
