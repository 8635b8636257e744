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
import { type BackupEntry, deleteBackup, listVmBackups, rewriteBackupMetadata } from './repository';

export interface ApplyRetentionDeps {
  /**
   * Merges the differencing VHD at `childLocalPath` into its parent in place; on success the merged
   * disk is at `childLocalPath` and the parent file is gone. Must resume an interrupted merge when
   * called again with the same child. (formats/vhd `mergeVhdIntoParent`.)
   */
  mergeVhdIntoParent(childLocalPath: string): Promise<void>;
  /**
   * Finishes the merges left unfinished in a chain folder (by a killed run, or by Xen Orchestra,
   * whose merge state files are the same), before anything is decided. (formats/vhd
   * `finishInterruptedMerges`.)
   */
  finishInterruptedMerges?(chainLocalDir: string): Promise<unknown>;
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
  const list = (dir: string) =>
    remote.list(dir).then(
      (names) => names.filter((n) => !n.startsWith('.')),
      (error) => {
        if (isRemoteError(error, 'ENOENT') || isRemoteError(error, 'ENOTDIR')) return [];
        throw error;
      },
    );
  for (const job of await list(`${vmDir}/vdis`)) {
    for (const vdi of await list(`${vmDir}/vdis/${job}`)) {
      for (const name of await list(`${vmDir}/vdis/${job}/${vdi}`)) {
        if (!name.endsWith('.vhd')) continue;
        const path = `vdis/${job}/${vdi}/${name}`;
        const parent = await readVhdParent(remote, `${vmDir}/${path}`);
        links.push({ path, parent: parent === null ? null : relativeToVmDir(vmDir, parent) });
      }
    }
  }
  return links;
}

/** The VM's chain folders (`vdis/<job>/<vdi>`), relative to the remote root. */
async function chainDirs(remote: Remote, vmUuid: string): Promise<string[]> {
  const vmDir = vmBackupDir(vmUuid);
  const dirs: string[] = [];
  for (const job of await listNames(remote, `${vmDir}/vdis`))
    for (const vdi of await listNames(remote, `${vmDir}/vdis/${job}`))
      dirs.push(`${vmDir}/vdis/${job}/${vdi}`);
  return dirs;
}

const listNames = (remote: Remote, dir: string) =>
  remote.list(dir).then(
    (names) => names.filter((n) => !n.startsWith('.')),
    (error) => {
      if (isRemoteError(error, 'ENOENT') || isRemoteError(error, 'ENOTDIR')) return [] as string[];
      throw error;
    },
  );

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
  if (deps.finishInterruptedMerges && !options.dryRun) {
    for (const dir of await chainDirs(remote, vmUuid)) {
      const local = remote.localPath(dir);
      if (local) await deps.finishInterruptedMerges(local);
    }
  }
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

  const inVmDir = (path: string) => resolveInVmDir(vmUuid, path);
  // Merges write through local paths, around the Remote: make sure the remote takes writes first.
  if (plan.operations.length > 0) await remote.checkWritable();
  for (const op of plan.operations) {
    await execute(remote, op, byId, deps, inVmDir);
    report.done.push(describeOperation(op));
  }
  return report;
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
      const localChild = remote.localPath(child);
      if (localChild === undefined) {
        throw new RemoteError(
          remote.id,
          child,
          'UNSUPPORTED',
          'merging a VHD needs a remote with local paths',
        );
      }
      const parent = inVmDir(op.parent);
      // The contract: parent gone, merged disk at the child's name. Check rather than trust; a second
      // call covers a merge that returned early (e.g. it found a finished merge's leftover state file).
      for (let attempt = 0; attempt < 2; attempt++) {
        await deps.mergeVhdIntoParent(localChild);
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
      await remote.delete(inVmDir(op.path));
      return;
  }
}
