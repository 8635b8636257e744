// Runs a schedule's retention on one VM folder of a remote: decide (core/retention), plan the chain
// operations (core/retention), execute them in a crash-safe order:
//   1. merges (the kept backups stay readable at every instant: the merged file takes the child's name),
//   2. metadata of kept backups whose disk changed (atomic rewrite),
//   3. metadata of removed backups, then their XVAs, then VHDs no kept backup needs (newest first).
// Everything is derived again from the remote on each call, so re-running after a crash continues the
// job: finished steps are no longer planned, an interrupted merge is resumed by the merge itself.
// Call it holding the VM lock (acquireVmLock).
import {
  type ChainBackup,
  decideRetention,
  describeOperation,
  planChainRetention,
  type RetentionDecision,
  type RetentionOperation,
  type RetentionPlan,
  type RetentionPolicy,
  type VhdLink,
} from '../core/retention';
import { type DeltaBackupMetadata, differencingKey, isDiskDifferencing } from './backup-metadata';
import { resolveInVmDir, vmBackupDir } from './backup-paths';
import { isRemoteError, type Remote, RemoteError } from './remote';
import {
  type BackupEntry,
  chainFolders,
  deleteBackup,
  listVmBackups,
  rewriteBackupMetadata,
  vhdsIn,
} from './repository';
import { deleteVhd } from './vhd-directory';

export interface ApplyRetentionDeps {
  /**
   * Merges the differencing VHD at `childPath` (relative to the remote root) into its parent; on
   * success the merged disk is at `childPath` and the parent file is gone. Must resume an interrupted
   * merge when called again with the same child. (remotes/vhd-merge `mergeVhdOnRemote`.)
   */
  mergeVhdIntoParent(remote: Remote, childPath: string): Promise<void>;
  /**
   * Finishes the merges left unfinished in a chain folder (relative to the remote root; by a killed
   * run, or by Xen Orchestra, whose merge state files are the same), before anything is decided.
   * (remotes/vhd-merge `finishInterruptedMergesOnRemote`.)
   */
  finishInterruptedMerges?(remote: Remote, chainDir: string): Promise<unknown>;
  /** The parent of a VHD as a path relative to the remote root, or null for a full (dynamic) VHD. */
  readVhdParent(remote: Remote, vhdPath: string): Promise<string | null>;
}

export interface RetentionReport {
  decision: RetentionDecision;
  plan: RetentionPlan;
  /** describe() of each operation carried out, in order */
  done: string[];
}

/** Every `.vhd` file in the VM's chain folders with its parent, paths relative to the VM folder. */
export async function readVhdLinks(
  remote: Remote,
  vmUuid: string,
  readVhdParent: ApplyRetentionDeps['readVhdParent'],
): Promise<VhdLink[]> {
  const vmDir = vmBackupDir(vmUuid);
  const links: VhdLink[] = [];
  for (const dir of await chainFolders(remote, vmUuid)) {
    for (const name of await vhdsIn(remote, dir)) {
      const parent = await readVhdParent(remote, `${dir}/${name}`);
      links.push({
        path: relativeToVmDir(vmDir, `${dir}/${name}`),
        parent: parent === null ? null : relativeToVmDir(vmDir, parent),
      });
    }
  }
  return links;
}

/** Merges a killed run or Xen Orchestra left unfinished are finished first: the chains are whole again. */
async function finishInterruptedMerges(remote: Remote, vmUuid: string, deps: ApplyRetentionDeps) {
  if (!deps.finishInterruptedMerges) return;
  for (const dir of await chainFolders(remote, vmUuid)) await deps.finishInterruptedMerges(remote, dir);
}

function relativeToVmDir(vmDir: string, path: string): string {
  // A parent outside the VM folder cannot be ours to merge; keep it absolute-ish so it is "missing".
  return path.startsWith(`${vmDir}/`) ? path.slice(vmDir.length + 1) : `../${path}`;
}

function chainBackupOf(entry: BackupEntry): ChainBackup {
  const meta = entry.metadata;
  if (meta?.mode !== 'delta') return { id: entry.id, vhds: [] };
  const differencing: Record<string, boolean> = {};
  for (const [ref, vhd] of Object.entries(meta.vhds))
    differencing[stripDot(vhd)] = isDiskDifferencing(meta, ref);
  return { id: entry.id, vhds: Object.keys(differencing), differencing };
}

const stripDot = (ref: string) => ref.replace(/^(\.\/)+/, '');

export async function applyRetention(
  remote: Remote,
  vmUuid: string,
  policy: RetentionPolicy,
  deps: ApplyRetentionDeps,
  options: { dryRun?: boolean } = {},
): Promise<RetentionReport> {
  if (!options.dryRun) await finishInterruptedMerges(remote, vmUuid, deps);
  const entries = await listVmBackups(remote, vmUuid, { readVhdParent: deps.readVhdParent });
  const byId = new Map(entries.map((e) => [e.id, e]));
  const withMetadata = entries.filter((e) => e.status !== 'partial');
  const decision = decideRetention(
    withMetadata.map((e) => ({
      id: e.id,
      timestamp: e.timestamp,
      // Unreadable metadata belongs to no one we can name: unrestorable, so this run may remove it.
      scheduleId: e.metadata?.scheduleId ?? policy.scheduleId,
      mode: e.metadata?.mode ?? policy.mode,
      ok: e.status === 'ok',
      problem: e.problems.join('; '),
    })),
    policy,
  );
  // A partial entry's data has no metadata to keep it: its XVA goes, its VHDs are orphans to the plan.
  const partialIds = entries.filter((e) => e.status === 'partial').map((e) => e.id);
  const plan = planChainRetention({
    backups: entries.map(chainBackupOf),
    vhds: await readVhdLinks(remote, vmUuid, deps.readVhdParent),
    remove: [...decision.remove.map((r) => r.id), ...partialIds],
  });
  const report: RetentionReport = { decision, plan, done: [] };
  if (options.dryRun) return report;
  report.done = await executePlan(remote, vmUuid, plan, byId, deps);
  return report;
}

/**
 * Deletes chosen backups of a VM with the chain rules of retention: a delta's VHD that newer kept
 * backups still chain on is merged into its child first, then the metadata goes, then unneeded
 * files. Returns what was done. Call it holding the VM lock.
 */
export async function removeBackups(
  remote: Remote,
  vmUuid: string,
  ids: readonly string[],
  deps: ApplyRetentionDeps,
): Promise<{ plan: RetentionPlan; done: string[] }> {
  const list = () => listVmBackups(remote, vmUuid, { readVhdParent: deps.readVhdParent });
  const known = new Set((await list()).map((e) => e.id));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length > 0) throw new RemoteError(remote.id, unknown[0]!, 'ENOENT', 'no such backup');
  await finishInterruptedMerges(remote, vmUuid, deps);
  const entries = await list();
  const byId = new Map(entries.map((e) => [e.id, e]));
  const plan = planChainRetention({
    backups: entries.map(chainBackupOf),
    vhds: await readVhdLinks(remote, vmUuid, deps.readVhdParent),
    remove: [...ids],
  });
  return { plan, done: await executePlan(remote, vmUuid, plan, byId, deps) };
}

async function executePlan(
  remote: Remote,
  vmUuid: string,
  plan: RetentionPlan,
  byId: Map<string, BackupEntry>,
  deps: ApplyRetentionDeps,
): Promise<string[]> {
  const inVmDir = (path: string) => resolveInVmDir(vmUuid, path);
  // Make sure the remote takes writes before the first step changes anything.
  if (plan.operations.length > 0) await remote.checkWritable();
  const done: string[] = [];
  for (const op of plan.operations) {
    await execute(remote, op, byId, deps, inVmDir);
    done.push(describeOperation(op));
  }
  return done;
}

async function execute(
  remote: Remote,
  op: RetentionOperation,
  byId: Map<string, BackupEntry>,
  deps: ApplyRetentionDeps,
  inVmDir: (path: string) => string,
): Promise<void> {
  switch (op.kind) {
    case 'merge': {
      const child = inVmDir(op.child);
      const parent = inVmDir(op.parent);
      // The contract: parent gone, merged disk at the child's name. Check rather than trust; a second
      // call covers a merge that returned early (e.g. it found a finished merge's leftover state file).
      for (let attempt = 0; attempt < 2; attempt++) {
        await deps.mergeVhdIntoParent(remote, child);
        if (!(await remote.exists(parent)) && (await remote.exists(child))) return;
      }
      throw new RemoteError(remote.id, child, 'EIO', `merge into ${op.parent} did not complete`);
    }
    case 'update-metadata': {
      const entry = byId.get(op.backupId);
      if (entry?.metadata?.mode !== 'delta') return;
      const meta: DeltaBackupMetadata = structuredClone(entry.metadata);
      const isVhdDifferencing = { ...(meta.isVhdDifferencing ?? {}) };
      for (const [ref, vhd] of Object.entries(meta.vhds)) {
        if (stripDot(vhd) !== op.vhd) continue;
        // Keep whichever key form the file already uses (XO: `<ref>.vhd`).
        const key =
          ref in isVhdDifferencing && !(differencingKey(ref) in isVhdDifferencing)
            ? ref
            : differencingKey(ref);
        isVhdDifferencing[key] = op.differencing;
      }
      meta.isVhdDifferencing = isVhdDifferencing;
      // As XO does after a merge: size = what the backup's disks now weigh.
      let size = 0;
      for (const vhd of Object.values(meta.vhds)) {
        size += await remote.stat(inVmDir(vhd)).then(
          (s) => s.size,
          (error) => {
            if (isRemoteError(error, 'ENOENT')) return 0; // a broken kept backup: not ours to fix
            throw error;
          },
        );
      }
      meta.size = size;
      await rewriteBackupMetadata(remote, entry.id, meta);
      entry.metadata = meta;
      return;
    }
    case 'delete-backup': {
      const entry = byId.get(op.backupId);
      if (entry !== undefined) await deleteBackup(remote, entry);
      return;
    }
    case 'delete-vhd':
      await deleteVhd(remote, inVmDir(op.path));
      return;
  }
}
