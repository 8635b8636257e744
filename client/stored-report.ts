// Reading a run's full report where the run stored it (remotes/run-reports.ts), from the client's
// side and without any activity: the job's first remote, opened read-only from the client's own
// config (so an S3 or encrypted remote works wherever its credentials resolve: the secrets are
// references in the config, never in the run's result), or the worker's state folder when the run
// had no remote (readable on the worker's machine).
import type { Config } from '../core/config/schema';
import { inlineReportOf, type RunReport, type RunResult } from '../core/run-report';
import { BackupRepository } from '../remotes/backup-repository';
import { openRemote } from '../remotes/open-remote';
import { isRemoteError } from '../remotes/remote';
import { stateReportRemote } from '../remotes/run-reports';
import { stateDir } from '../server/dev-server';

export type ReportConfig = Pick<Config, 'remotes'>;

/** The full report of a run's result: inline for a small run, else read where it is stored. */
export async function fullRunReport(
  result: RunResult | RunReport,
  config: ReportConfig | undefined,
): Promise<RunReport> {
  const inline = inlineReportOf(result);
  if (inline) return inline;
  const r = result as RunResult;
  if (!r.stored)
    throw new Error(
      `the full report of run ${r.workflowId} was not stored (${r.storeError ?? 'no reason given'}); ` +
        `its summary: ${r.counts.vms} VMs, ${r.counts.failure} failed`,
    );
  const report = await readStoredReport(r.workflowId, r.stored, config);
  return { ...report, reports: r.reports ?? report.reports };
}

export async function readStoredReport(
  workflowId: string,
  stored: NonNullable<RunResult['stored']>,
  config: ReportConfig | undefined,
): Promise<RunReport> {
  if (stored.remoteId !== undefined) {
    const remote = config?.remotes.find((rc) => rc.id === stored.remoteId);
    if (!remote)
      throw new Error(
        `the full report of run ${workflowId} is on remote "${stored.remoteId}" (${stored.path}): ` +
          'read it with the config that defines that remote (--config)',
      );
    return BackupRepository.readOnly(openRemote(remote)).readRunReport(workflowId);
  }
  const folder = stateDir();
  try {
    return await new BackupRepository(await stateReportRemote(folder)).readRunReport(workflowId);
  } catch (err) {
    if (!isRemoteError(err, 'ENOENT')) throw err;
    throw new Error(
      `the full report of run ${workflowId} is in the state folder of the worker that ran it ` +
        `(<state folder>/run-reports/${stored.path}), not in ${folder}: read it on that machine`,
    );
  }
}
