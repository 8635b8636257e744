// VM backups on a remote, in Xen Orchestra's layout: write metadata, list (never failing on one bad
// entry), delete, clean leftovers. Chains and merges are decided by core/retention and executed by
// apply-retention; this module only knows files.
import { parseBackupTimestamp } from '../core/backup-time';
import {
  type BackupMetadata,
  backupMetadataSchema,
  describeSchemaError,
  newBackupMetadataSchema,
} from './backup-metadata';
import { backupPaths, resolveInVmDir, VM_BACKUPS_DIR, vmBackupDir, XO_CACHE_FILE } from './backup-paths';
import { basenameOf, dirnameOf, isRemoteError, type Remote, RemoteError } from './remote';
import { isTemporaryName } from './temporary-names';

/**
 * ok: restorable as far as files go. broken: metadata unreadable or a file it needs is missing.
 * partial: data with no metadata (a write interrupted before the JSON, or a delete interrupted after).
 */
export type BackupStatus = 'ok' | 'broken' | 'partial';

export interface BackupEntry {
  /** Metadata path relative to the remote root (for partial entries: `<vmDir>/<ts>`, no file). */
  id: string;
  vmUuid: string;
  /** `<ts>` */
  basename: string;
  /** epoch ms: metadata's timestamp, else the one in the name, else 0 */
  timestamp: number;
  status: BackupStatus;
  problems: string[];
  metadata?: BackupMetadata;
  /** Data files of this backup that exist, relative to the remote root. */
  dataFiles: string[];
}

const TS_JSON = /^(.+)\.json$/;
const ROOT_DATA = /^(.+)\.xva(\.checksum)?$/;

async function listOrEmpty(remote: Remote, dir: string): Promise<string[]> {
  try {
    return await remote.list(dir);
  } catch (error) {
    if (isRemoteError(error, 'ENOENT') || isRemoteError(error, 'ENOTDIR')) return [];
    throw error;
  }
}

const visible = (name: string) => !name.startsWith('.');

/**
 * The chain folders of a VM, `<vmDir>/vdis/<jobId>/<vdiUuid>` (relative to the root): the one walk
 * over Xen Orchestra's delta layout (listing, temporary-file sweeps and retention all use it).
 */
export async function chainFolders(remote: Remote, vmUuid: string): Promise<string[]> {
  const vdisDir = `${vmBackupDir(vmUuid)}/vdis`;
  const out: string[] = [];
  for (const job of await listOrEmpty(remote, vdisDir)) {
    if (!visible(job)) continue;
    for (const vdi of await listOrEmpty(remote, `${vdisDir}/${job}`)) {
      if (visible(vdi)) out.push(`${vdisDir}/${job}/${vdi}`);
    }
  }
  return out;
}

/** Visible `.vhd` files (and XO's `.alias.vhd`) of a folder, sorted; none when it does not exist. */
export async function vhdsIn(remote: Remote, dir: string): Promise<string[]> {
  return (await listOrEmpty(remote, dir)).filter((n) => visible(n) && n.endsWith('.vhd'));
}

/** The newest `<ts>` among the VM's backups (`<ts>.json` / `<ts>.xva`), if any. */
export async function newestBackupName(remote: Remote, vmUuid: string): Promise<string | undefined> {
  return (await listOrEmpty(remote, vmBackupDir(vmUuid)))
    .map((name) => /^(.+)\.(json|xva)$/.exec(name)?.[1])
    .filter((ts): ts is string => ts !== undefined && parseBackupTimestamp(ts) !== undefined)
    .sort()
    .at(-1);
}

/**
 * A failure of the remote rather than of the entry (I/O error, permissions, remote gone): the whole
 * listing fails instead of calling the entry broken, because retention removes broken entries.
 */
const isTransient = (error: unknown): boolean => error instanceof RemoteError && error.code !== 'ENOENT';

/** Drops XO's listing cache so XO rebuilds it from the JSON files we changed. */
async function invalidateXoCache(remote: Remote, vmUuid: string): Promise<void> {
  await remote.delete(`${vmBackupDir(vmUuid)}/${XO_CACHE_FILE}`);
}

function timestampOf(basename: string, metadata?: { timestamp?: unknown }): number {
  if (typeof metadata?.timestamp === 'number' && Number.isFinite(metadata.timestamp))
    return metadata.timestamp;
  return parseBackupTimestamp(basename) ?? 0;
}

/**
 * Writes `<ts>.json` atomically. Must be the LAST file of a backup: once it exists the backup exists.
 * Re-writing identical content is a no-op (a retried activity); different content is EEXIST.
 */
export async function writeBackupMetadata(remote: Remote, metadata: BackupMetadata): Promise<string> {
  const parsed = newBackupMetadataSchema.safeParse(metadata);
  if (!parsed.success) {
    throw new RangeError(`invalid backup metadata: ${describeSchemaError(parsed.error)}`);
  }
  const paths = backupPaths(metadata.vm.uuid, metadata.timestamp);
  if (metadata.mode === 'full' && metadata.xva !== paths.metadataXvaRef) {
    throw new RangeError(`invalid backup metadata: xva must be ${paths.metadataXvaRef}, got ${metadata.xva}`);
  }
  if (metadata.mode === 'delta') {
    for (const [ref, vhd] of Object.entries(metadata.vhds)) {
      const name = basenameOf(vhd);
      if (
        !/^vdis\/[^/]+\/[^/]+\/[^/]+\.vhd$/.test(vhd) ||
        (name !== `${paths.basename}.vhd` && name !== `${paths.basename}.alias.vhd`)
      ) {
        throw new RangeError(
          `invalid backup metadata: vhds.${ref} must be vdis/<jobId>/<vdiUuid>/${paths.basename}.vhd`,
        );
      }
      if (metadata.isVhdDifferencing?.[`${ref}.vhd`] === undefined) {
        throw new RangeError(`invalid backup metadata: isVhdDifferencing["${ref}.vhd"] is missing`);
      }
    }
  }
  const content = JSON.stringify(metadata);
  if (await remote.exists(paths.metadata)) {
    const existing = (await remote.readFile(paths.metadata)).toString();
    if (existing === content) return paths.metadata;
    throw new RemoteError(
      remote.id,
      paths.metadata,
      'EEXIST',
      'a different backup already has this metadata name',
    );
  }
  await remote.writeFileAtomic(paths.metadata, content);
  await invalidateXoCache(remote, metadata.vm.uuid);
  return paths.metadata;
}

/** Rewrites an existing backup's metadata (after a merge changed its disks), atomically. */
export async function rewriteBackupMetadata(
  remote: Remote,
  id: string,
  metadata: BackupMetadata,
): Promise<void> {
  await remote.writeFileAtomic(id, JSON.stringify(metadata));
  await invalidateXoCache(remote, metadata.vm.uuid);
}

export interface ListOptions {
  /**
   * Reads a VHD's parent (path relative to the remote root, null for a full VHD); given, every delta's
   * parent file is checked like XO's clean-vm does. Without it only file presence is checked.
   */
  readVhdParent?: (remote: Remote, vhdPath: string) => Promise<string | null>;
}

interface FolderIndex {
  /** `.vhd` files per folder (relative to the root), sorted */
  vhdsIn(dir: string): Promise<string[]>;
}

function folderIndex(remote: Remote): FolderIndex {
  const cache = new Map<string, Promise<string[]>>();
  return {
    vhdsIn(dir) {
      let names = cache.get(dir);
      if (names === undefined) {
        names = vhdsIn(remote, dir);
        cache.set(dir, names);
      }
      return names;
    },
  };
}

/**
 * Follows each VHD's parents up to a full disk, like XO's clean-vm: a backup is broken if any VHD of
 * its chain is unreadable or missing. The VHD header, not the metadata flag, says whether a parent is
 * needed (a merge may have made a delta full before its metadata was rewritten). Memoized per listing.
 */
interface ChainChecker {
  /** undefined when the chain is whole; else a sentence with `{vhd}` standing for the backup's ref */
  problemOf(vhdPath: string): Promise<string | undefined>;
}

function chainChecker(
  remote: Remote,
  readVhdParent: NonNullable<ListOptions['readVhdParent']>,
): ChainChecker {
  const parents = new Map<string, Promise<string | null>>();
  const exists = new Map<string, Promise<boolean>>();
  const parentOf = (path: string) => {
    let parent = parents.get(path);
    if (parent === undefined) {
      parent = readVhdParent(remote, path);
      parents.set(path, parent);
    }
    return parent;
  };
  const present = (path: string) => {
    let found = exists.get(path);
    if (found === undefined) {
      found = remote.exists(path);
      exists.set(path, found);
    }
    return found;
  };
  return {
    async problemOf(vhdPath) {
      const visited = new Set<string>();
      for (let current = vhdPath; ; ) {
        visited.add(current);
        let parent: string | null;
        try {
          parent = await parentOf(current);
        } catch (error) {
          if (isTransient(error)) throw error;
          const why = error instanceof Error ? error.message : String(error);
          return current === vhdPath
            ? `unreadable VHD {vhd}: ${why}`
            : `delta {vhd}: its ancestor ${current} is unreadable: ${why}`;
        }
        if (parent === null) return undefined;
        if (!(await present(parent))) {
          return `delta {vhd}: its ${current === vhdPath ? 'parent' : 'ancestor'} ${parent} is missing`;
        }
        if (visited.has(parent)) return `delta {vhd}: its parent links loop at ${parent}`;
        current = parent;
      }
    },
  };
}

async function readEntry(
  remote: Remote,
  vmUuid: string,
  basename: string,
  rootNames: Set<string>,
  index: FolderIndex,
  chains: ChainChecker | undefined,
): Promise<BackupEntry> {
  const vmDir = vmBackupDir(vmUuid);
  const id = `${vmDir}/${basename}.json`;
  const entry: BackupEntry = {
    id,
    vmUuid,
    basename,
    timestamp: timestampOf(basename),
    status: 'ok',
    problems: [],
    dataFiles: [],
  };
  const broken = (problem: string) => {
    entry.status = 'broken';
    entry.problems.push(problem);
  };

  let raw: unknown;
  try {
    raw = JSON.parse((await remote.readFile(id)).toString());
  } catch (error) {
    if (isTransient(error)) throw error;
    broken(
      `unreadable metadata: ${error instanceof SyntaxError ? `invalid JSON (${error.message})` : String(error)}`,
    );
    for (const name of [`${basename}.xva`, `${basename}.xva.checksum`]) {
      if (rootNames.has(name)) entry.dataFiles.push(`${vmDir}/${name}`);
    }
    return entry;
  }
  const parsed = backupMetadataSchema.safeParse(raw);
  if (!parsed.success) {
    broken(`invalid metadata: ${describeSchemaError(parsed.error)}`);
    return entry;
  }
  const metadata = parsed.data;
  entry.metadata = metadata;
  entry.timestamp = timestampOf(basename, metadata);
  if (metadata.vm.uuid !== vmUuid) broken(`metadata is for VM ${metadata.vm.uuid}, not ${vmUuid}`);

  const need = async (ref: string): Promise<string | undefined> => {
    let path: string;
    try {
      path = resolveInVmDir(vmUuid, ref);
      if (ref.split('/').includes('..')) throw new Error('..');
    } catch {
      broken(`metadata refers to an invalid path ${JSON.stringify(ref)}`);
      return undefined;
    }
    if (
      dirnameOf(path) === vmDir
        ? rootNames.has(basenameOf(path))
        : (await index.vhdsIn(dirnameOf(path))).includes(basenameOf(path))
    ) {
      entry.dataFiles.push(path);
      return path;
    }
    // Not in a listing (e.g. an alias or an unusual folder): ask the remote.
    if (await remote.exists(path)) {
      entry.dataFiles.push(path);
      return path;
    }
    broken(`missing ${ref}`);
    return undefined;
  };

  if (metadata.mode === 'full') {
    await need(metadata.xva);
    const checksum = `${basenameOf(resolveInVmDir(vmUuid, metadata.xva))}.checksum`;
    if (rootNames.has(checksum)) entry.dataFiles.push(`${vmDir}/${checksum}`);
    return entry;
  }
  if (Object.keys(metadata.vhds).length === 0) broken('delta backup without disks');
  for (const vhdRef of Object.values(metadata.vhds)) {
    const path = await need(vhdRef);
    if (path === undefined || chains === undefined) continue;
    const problem = await chains.problemOf(path);
    if (problem !== undefined) broken(problem.replace('{vhd}', vhdRef));
  }
  return entry;
}

/** Every backup of a VM, oldest first (ties by id), each ok / broken / partial with its problems. */
export async function listVmBackups(
  remote: Remote,
  vmUuid: string,
  options: ListOptions = {},
): Promise<BackupEntry[]> {
  const vmDir = vmBackupDir(vmUuid);
  const names = (await listOrEmpty(remote, vmDir)).filter(visible);
  const rootNames = new Set(names);
  const index = folderIndex(remote);
  const chains = options.readVhdParent && chainChecker(remote, options.readVhdParent);
  const entries: BackupEntry[] = [];
  const withMetadata = new Set<string>();
  for (const name of names) {
    const m = TS_JSON.exec(name);
    if (m === null) continue;
    withMetadata.add(m[1]!);
    entries.push(await readEntry(remote, vmUuid, m[1]!, rootNames, index, chains));
  }

  // Data without metadata: root XVAs, and VHDs of a `<ts>` that has no JSON.
  const partial = new Map<string, string[]>();
  const addPartial = (basename: string, path: string) =>
    partial.set(basename, [...(partial.get(basename) ?? []), path]);
  for (const name of names) {
    const m = ROOT_DATA.exec(name);
    if (m !== null && !withMetadata.has(m[1]!)) addPartial(m[1]!, `${vmDir}/${name}`);
  }
  for (const dir of await chainFolders(remote, vmUuid)) {
    for (const vhd of await index.vhdsIn(dir)) {
      const basename = vhd.replace(/(\.alias)?\.vhd$/, '');
      if (!withMetadata.has(basename)) addPartial(basename, `${dir}/${vhd}`);
    }
  }
  for (const [basename, dataFiles] of partial) {
    entries.push({
      id: `${vmDir}/${basename}`,
      vmUuid,
      basename,
      timestamp: timestampOf(basename),
      status: 'partial',
      problems: ['data without metadata: an interrupted write, or a delete or merge not finished yet'],
      dataFiles: dataFiles.sort(),
    });
  }
  return entries.sort((a, b) => a.timestamp - b.timestamp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Every VM's backups on the remote, oldest first. */
export async function listAllBackups(remote: Remote, options: ListOptions = {}): Promise<BackupEntry[]> {
  const all: BackupEntry[] = [];
  for (const name of await listOrEmpty(remote, VM_BACKUPS_DIR)) {
    // skip `.queue`, XO's `<uuid>.lock` folders, our lock files
    if (!visible(name) || name.includes('.')) continue;
    all.push(...(await listVmBackups(remote, name, options)));
  }
  return all.sort((a, b) => a.timestamp - b.timestamp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Deletes a backup, metadata first so no listing ever shows a backup with half its files. A delta's
 * VHDs are NOT deleted here: they may be the parents of newer deltas; applyRetention merges or
 * deletes them (as XO's clean-vm does). A partial entry's XVA is deleted; its VHDs likewise wait.
 */
export async function deleteBackup(remote: Remote, entry: BackupEntry): Promise<void> {
  if (entry.status !== 'partial') await remote.delete(entry.id);
  for (const path of entry.dataFiles) {
    if (ROOT_DATA.test(basenameOf(path)) && dirnameOf(path) === vmBackupDir(entry.vmUuid))
      await remote.delete(path);
  }
  await invalidateXoCache(remote, entry.vmUuid);
}

/** Removes leftovers of interrupted writes (ours and XO's) in a VM's folder; returns what it removed. */
export async function cleanTemporaryFiles(remote: Remote, vmUuid: string): Promise<string[]> {
  const vmDir = vmBackupDir(vmUuid);
  const removed: string[] = [];
  const sweep = async (dir: string) => {
    for (const name of await listOrEmpty(remote, dir)) {
      if (!isTemporaryName(name)) continue;
      await remote.delete(`${dir}/${name}`);
      removed.push(`${dir}/${name}`);
    }
  };
  await sweep(vmDir);
  for (const dir of await chainFolders(remote, vmUuid)) await sweep(dir);
  return removed;
}
