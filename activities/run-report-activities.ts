// Storing a run's full report outside Temporal's history (remotes/run-reports.ts): on the job's
// first remote, beside its backups, or in this worker's state folder when the job has no remote or
// that remote cannot be written. The workflow gets back only where it is and a bounded summary.
import { log } from '@temporalio/activity';
import {
  emptyTally,
  INLINE_VMS_BYTES,
  inlineReportOf,
  type RunReport,
  type RunResult,
  type StoredReport,
  tallyVm,
  type VmReport,
  type VmTally,
} from '../core/run-report';
import { runReportPaths } from '../remotes/backup-paths';
import { BackupRepository } from '../remotes/backup-repository';
import { stateReportRemote } from '../remotes/run-reports';
import { stateDir } from '../server/dev-server';
import type { RemoteRegistry } from './transfer-activities';

// A type, not an interface: keepingAlive takes a record of functions.
export type RunReportActivities = {
  /** A batch's VM reports so far (part `part` of batch `batch` of run `workflowId`). */
  saveRunReportPart(req: {
    remoteId?: string;
    workflowId: string;
    batch: number;
    part: number;
    vms: VmReport[];
  }): Promise<void>;
  /**
   * Merges the parts with `report` (the run's header and the VMs the job itself knows) into the
   * stored report. Returns where it is, its tally, and its VMs when they fit INLINE_VMS_BYTES.
   */
  storeRunReport(req: { remoteId?: string; report: RunReport }): Promise<StoredRunReport>;
};

export interface StoredRunReport extends VmTally {
  stored: StoredReport;
  vms?: VmReport[];
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function createRunReportActivities(
  remotes: RemoteRegistry,
  stateFolder: () => string = stateDir,
): RunReportActivities {
  const state = async () => new BackupRepository(await stateReportRemote(stateFolder()));
  return {
    async saveRunReportPart({ remoteId, workflowId, batch, part, vms }) {
      if (remoteId !== undefined) {
        try {
          return await new BackupRepository(remotes(remoteId)).writeRunReportPart(
            workflowId,
            batch,
            part,
            vms,
          );
        } catch (err) {
          log.warn('run report part kept in the worker state folder', { remoteId, error: message(err) });
        }
      }
      await (await state()).writeRunReportPart(workflowId, batch, part, vms);
    },

    async storeRunReport({ remoteId, report }) {
      const local = await state();
      let full: RunReport | undefined;
      let stored: StoredReport | undefined;
      if (remoteId !== undefined) {
        try {
          // Parts a failing remote made us keep locally join the others on the remote.
          const fallen = await local.readRunReportParts(report.workflowId);
          full = await new BackupRepository(remotes(remoteId)).finishRunReport(report, fallen);
          await local.removeRunReportParts(report.workflowId);
          stored = { remoteId, path: runReportPaths(report.workflowId).report };
        } catch (err) {
          log.warn('run report kept in the worker state folder', { remoteId, error: message(err) });
        }
      }
      if (!full || !stored) {
        full = await local.finishRunReport(report);
        stored = { path: runReportPaths(report.workflowId).report };
      }
      const tally = full.vms.reduce(tallyVm, emptyTally());
      const inline = JSON.stringify(full.vms).length <= INLINE_VMS_BYTES;
      return { ...tally, stored, vms: inline ? full.vms : undefined };
    },
  };
}

/** Reads the full report of a run's result: inline, or where the run stored it. */
export function runReportReader(
  remotes: RemoteRegistry,
  stateFolder: () => string = stateDir,
): (result: RunResult | RunReport) => Promise<RunReport> {
  return async (result) => {
    const inline = inlineReportOf(result);
    if (inline) return inline;
    const { stored } = result as RunResult;
    if (!stored) throw new Error(`run ${result.workflowId} has no stored report`);
    const repository = new BackupRepository(
      stored.remoteId !== undefined ? remotes(stored.remoteId) : await stateReportRemote(stateFolder()),
    );
    return { ...(await repository.readRunReport(result.workflowId)), reports: result.reports };
  };
}
