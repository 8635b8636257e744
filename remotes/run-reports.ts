// A run's full report on a remote (layout: backup-paths runReportPaths). While the run goes its
// batches write their VM reports as parts; when it ends the parts are merged into one report.json
// and removed. Kept outside Temporal's history, whose payloads and events must stay bounded
// whatever the job's size (a run of 10,000 VMs has a report of tens of MB).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { RunReport, VmReport } from '../core/run-report';
import { runReportPaths } from './backup-paths';
import { createLocalRemote } from './local';
import { isRemoteError, type Remote } from './remote';

/**
 * The run reports kept in a worker's state folder (`<state>/run-reports`, same layout): for jobs
 * without remotes, and as the fallback when the job's first remote cannot be written.
 */
export async function stateReportRemote(stateDir: string): Promise<Remote> {
  const root = path.join(stateDir, 'run-reports');
  await mkdir(root, { recursive: true });
  return createLocalRemote({ id: 'worker state', root });
}

/** One part of a run's VM reports (a batch writes one part per few hundred KB of reports). */
export async function writeRunReportPart(
  remote: Remote,
  workflowId: string,
  batch: number,
  part: number,
  vms: readonly VmReport[],
): Promise<void> {
  await remote.writeFileAtomic(runReportPaths(workflowId).part(batch, part), JSON.stringify(vms));
}

/** The VM reports of the parts written so far, in batch then part order. */
export async function readRunReportParts(remote: Remote, workflowId: string): Promise<VmReport[]> {
  const paths = runReportPaths(workflowId);
  const names = await remote.list(paths.partsDir).catch((err) => {
    if (isRemoteError(err, 'ENOENT')) return [];
    throw err;
  });
  const vms: VmReport[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    vms.push(...(JSON.parse((await remote.readFile(`${paths.partsDir}/${name}`)).toString()) as VmReport[]));
  }
  return vms;
}

/**
 * Writes report.json: the run's header and `vms` (VMs known to the run itself, e.g. missing ones),
 * then every VM of the parts, of `extraParts` (parts written elsewhere when this remote failed) and of
 * a report.json already there (a retried call that had removed some parts). Then removes the parts.
 * Idempotent, so Temporal may retry it.
 */
export async function finishRunReport(
  remote: Remote,
  report: RunReport,
  extraParts: readonly VmReport[] = [],
): Promise<RunReport> {
  const paths = runReportPaths(report.workflowId);
  const byVm = new Map<string, VmReport>();
  const earlier = await readRunReport(remote, report.workflowId).catch((err) => {
    if (isRemoteError(err, 'ENOENT')) return undefined;
    throw err;
  });
  for (const vm of [
    ...(earlier?.vms ?? []),
    ...report.vms,
    ...(await readRunReportParts(remote, report.workflowId)),
    ...extraParts,
  ])
    byVm.set(vm.workflowId || vm.vmUuid, vm);
  const full: RunReport = { ...report, vms: [...byVm.values()] };
  await remote.writeFileAtomic(paths.report, JSON.stringify(full));
  await removeRunReportParts(remote, report.workflowId);
  return full;
}

export async function removeRunReportParts(remote: Remote, workflowId: string): Promise<void> {
  const { partsDir } = runReportPaths(workflowId);
  const parts = await remote.list(partsDir).catch(() => [] as string[]);
  for (const name of parts) await remote.delete(`${partsDir}/${name}`);
}

/** The full report of a finished run. */
export async function readRunReport(remote: Remote, workflowId: string): Promise<RunReport> {
  return JSON.parse((await remote.readFile(runReportPaths(workflowId).report)).toString()) as RunReport;
}
