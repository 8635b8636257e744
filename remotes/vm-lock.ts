// One writer per VM folder on a remote: two runs (of xcp-backup, or of Xen Orchestra) must never
// write (or merge) the same VM's chains at once. Two files make the lock:
//
// - our owner record `<vmUuid>.xcpb-lock.json`, created exclusively, saying which run holds the
//   folder: the same owner (a retried activity of the same run, on another worker) takes its own
//   lock back at once; and
// - Xen Orchestra's own lock, taken the way XO takes it on file remotes (proper-lockfile on the VM
//   folder): the directory `<vmDir>.lock`, created by mkdir, alive while its mtime is younger than
//   10 s (proper-lockfile's default `stale`, which XO keeps; XO refreshes it every 5 s from the
//   process that holds it). Our run spans activities on several processes, so instead of a timer in
//   one process we keep the directory's mtime pushed ahead, to `refreshedAt + staleAfterMs - 10 s`:
//   XO, and our own check, see it alive until exactly when our owner record goes stale. A holder
//   that stops refreshing for longer than `staleAfterMs` is presumed dead by both tools.
//   Lock folders exist only on remotes that are a folder (the Remote's `folderLocks` capability:
//   local, mounted SMB/NFS, encrypted or not); on object stores the owner record alone is the lock.
import { randomBytes } from 'node:crypto';
import { vmBackupDir } from './backup-paths';
import { type FolderLocks, isRemoteError, type LockFolderTimes, type Remote } from './remote';

/** proper-lockfile's default staleness, which Xen Orchestra's file remotes use for their VM locks. */
export const XO_LOCK_STALE_MS = 10_000;
/** How long a VM lock lives without a refresh, unless the worker is told otherwise. */
export const DEFAULT_VM_LOCK_STALE_MS = 5 * 60_000;
/** The holder refreshes this often: several refreshes may fail or be late before the lock goes stale. */
export const vmLockRefreshMs = (staleAfterMs: number): number => Math.max(200, Math.floor(staleAfterMs / 5));

export interface VmLockContent {
  owner: string;
  token: string;
  acquiredAt: number;
  refreshedAt: number;
}

export interface VmLock {
  readonly path: string;
  readonly owner: string;
  /** Proves the holder is alive; call more often than staleAfterMs. Throws if the lock was taken over. */
  refresh(): Promise<void>;
  /** Removes the lock if it is still ours; safe to call twice. */
  release(): Promise<void>;
}

/** Who holds a VM folder: one of our runs, Xen Orchestra (its lock folder), or an unreadable record. */
export type VmLockHolder = VmLockContent | { xo: string; ageMs: number } | undefined;

function describeHolder(holder: VmLockHolder): string {
  if (!holder) return 'an unreadable lock';
  if ('xo' in holder)
    return `Xen Orchestra or another tool using its lock folder ${holder.xo} (refreshed ${Math.round(holder.ageMs / 1000)} s ago)`;
  return `${JSON.stringify(holder.owner)} since ${new Date(holder.acquiredAt).toISOString()}`;
}

export class VmLockedError extends Error {
  override readonly name = 'VmLockedError';
  constructor(
    readonly remoteId: string,
    readonly vmUuid: string,
    readonly holder: VmLockHolder,
  ) {
    super(`remote ${JSON.stringify(remoteId)}: VM ${vmUuid} is locked by ${describeHolder(holder)}`);
  }
}

export interface VmLockOptions {
  /** How long without a refresh before a lock is presumed abandoned. Explicit: there is no default. */
  staleAfterMs: number;
  /** Injected clock (tests). */
  now?: () => number;
}

export const vmLockPath = (vmUuid: string): string => `${vmBackupDir(vmUuid)}.xcpb-lock.json`;

/** XO's lock folder of a VM, if the remote is a filesystem (object stores: XO takes no lock there either). */
interface XoLock {
  locks: FolderLocks;
  dir: string;
}

function xoLockOf(remote: Remote, vmUuid: string): XoLock | undefined {
  return remote.folderLocks && { locks: remote.folderLocks, dir: vmBackupDir(vmUuid) };
}

/** Keeps the lock folder alive (in XO's eyes: mtime within XO_LOCK_STALE_MS of now) until `until`. */
/**
 * Our lock folders carry atime 0 (proper-lockfile sets atime and mtime to now): a folder so marked
 * whose owner record is gone is an orphan of ours (its release was cut between the two removals),
 * not Xen Orchestra's lock, and is taken over at once.
 */
const OURS = 0;
const aheadOf = (until: number): LockFolderTimes => ({ atimeMs: OURS, mtimeMs: until - XO_LOCK_STALE_MS });

/** Takes the lock folder as proper-lockfile does (mkdir; a stale one is removed once); its age when held by someone else. */
async function takeXoLock(xo: XoLock, until: number, now: number): Promise<{ ageMs: number } | undefined> {
  for (let attempt = 0; ; attempt++) {
    if (await xo.locks.create(xo.dir, aheadOf(until))) return undefined;
    const found = await xo.locks.times(xo.dir);
    if (found === undefined) continue; // released meanwhile
    const mtime = found.mtimeMs;
    const orphanOfOurs = found.atimeMs === OURS; // see OURS: the caller holds the only owner record
    if ((mtime >= now - XO_LOCK_STALE_MS && !orphanOfOurs) || attempt > 0)
      return { ageMs: Math.max(0, now - mtime) };
    await xo.locks.remove(xo.dir);
  }
}

/**
 * Refreshes the owner record. On a filesystem only its mtime is set, which fails on a removed file:
 * a refresh racing with the release cannot bring the lock back. Elsewhere it is rewritten.
 */
async function touchRecord(
  remote: Remote,
  path: string,
  record: VmLockContent,
  at: number,
): Promise<boolean> {
  if (remote.folderLocks) return remote.folderLocks.touchFile(path, at);
  await remote.writeFileAtomic(path, JSON.stringify({ ...record, refreshedAt: at } satisfies VmLockContent));
  return true;
}

/** Pushes XO's lock folder ahead if it is still there (never recreates it: see touchRecord). */
const pushAheadIfThere = (xo: XoLock, until: number) => xo.locks.touch(xo.dir, aheadOf(until));

/** The owner record, its `refreshedAt` being the latest of its content and its mtime (refreshes touch it). */
async function readLock(remote: Remote, path: string): Promise<VmLockContent | 'missing' | 'unreadable'> {
  try {
    const content = JSON.parse((await remote.readFile(path)).toString()) as VmLockContent;
    if (typeof content.owner !== 'string' || typeof content.refreshedAt !== 'number') return 'unreadable';
    const { mtimeMs } = await remote.stat(path);
    return { ...content, refreshedAt: Math.max(content.refreshedAt, Math.floor(mtimeMs)) };
  } catch (error) {
    if (isRemoteError(error, 'ENOENT')) return 'missing';
    if (error instanceof SyntaxError) return 'unreadable';
    throw error;
  }
}

export async function acquireVmLock(
  remote: Remote,
  vmUuid: string,
  owner: string,
  { staleAfterMs, now = Date.now }: VmLockOptions,
): Promise<VmLock> {
  if (!(staleAfterMs > 0)) throw new RangeError(`staleAfterMs must be > 0, got ${staleAfterMs}`);
  const path = vmLockPath(vmUuid);
  const token = randomBytes(8).toString('hex');
  const acquiredAt = now();
  const record = (): VmLockContent => ({ owner, token, acquiredAt, refreshedAt: now() });

  const xo = xoLockOf(remote, vmUuid);

  const lock: VmLock = {
    path,
    owner,
    async refresh() {
      const current = await readLock(remote, path);
      if (
        typeof current === 'string' ||
        current.token !== token ||
        !(await touchRecord(remote, path, current, now()))
      ) {
        throw new VmLockedError(remote.id, vmUuid, typeof current === 'string' ? undefined : current);
      }
      if (xo) await pushAheadIfThere(xo, now() + staleAfterMs);
    },
    async release() {
      const current = await readLock(remote, path);
      if (typeof current !== 'string' && current.token === token) {
        if (xo) await xo.locks.remove(xo.dir);
        await remote.delete(path);
      }
    },
  };

  /** With our owner record written: takes XO's lock folder too (ours already when `ours`), or gives up. */
  const withXoLock = async (ours: boolean): Promise<VmLock> => {
    if (!xo) return lock;
    if (ours) {
      const until = aheadOf(now() + staleAfterMs);
      if (!(await xo.locks.create(xo.dir, until))) await xo.locks.touch(xo.dir, until);
      return lock;
    }
    const held = await takeXoLock(xo, now() + staleAfterMs, now());
    if (!held) return lock;
    await remote.delete(path);
    throw new VmLockedError(remote.id, vmUuid, { xo: `${vmBackupDir(vmUuid)}.lock`, ageMs: held.ageMs });
  };

  // Two attempts: the second after removing a stale (or our own) lock.
  let ownLock = false;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const mine = record();
      await remote.writeFileExclusive(path, JSON.stringify(mine));
      await touchRecord(remote, path, mine, mine.refreshedAt); // its mtime on our clock (see readLock)
      return await withXoLock(ownLock);
    } catch (error) {
      if (!isRemoteError(error, 'EEXIST')) throw error;
    }
    const holder = await readLock(remote, path);
    if (holder === 'missing') continue; // released meanwhile
    const lastSign =
      holder === 'unreadable'
        ? ((await remote.stat(path).catch(() => undefined))?.mtimeMs ?? 0)
        : holder.refreshedAt;
    ownLock = holder !== 'unreadable' && holder.owner === owner;
    const takeOver = ownLock || now() - lastSign > staleAfterMs;
    if (!takeOver || attempt === 1)
      throw new VmLockedError(remote.id, vmUuid, holder === 'unreadable' ? undefined : holder);
    // Delete only what we judged: if it changed meanwhile, someone live holds it. Our own lock
    // may be refreshed meanwhile by our keeper (it is only cancelled, not awaited, before the
    // release): still ours if the owner is.
    const again = await readLock(remote, path);
    const stillJudged = ownLock
      ? typeof again !== 'string' && again.owner === owner
      : JSON.stringify(again) === JSON.stringify(holder);
    if (!stillJudged) {
      throw new VmLockedError(remote.id, vmUuid, typeof again === 'string' ? undefined : again);
    }
    await remote.delete(path);
  }
  throw new VmLockedError(remote.id, vmUuid, undefined);
}

/**
 * Proves `owner` is alive to both tools: touches its owner record and pushes XO's lock folder
 * ahead. Called by whichever worker runs the owner's lock keeper (not necessarily the one that took
 * the lock). Throws VmLockedError when the lock is no longer `owner`'s (presumed dead and taken over).
 */
export async function refreshVmLock(
  remote: Remote,
  vmUuid: string,
  owner: string,
  { staleAfterMs, now = Date.now }: VmLockOptions,
): Promise<void> {
  const path = vmLockPath(vmUuid);
  const current = await readLock(remote, path);
  if (typeof current === 'string' || current.owner !== owner) {
    throw new VmLockedError(remote.id, vmUuid, typeof current === 'string' ? undefined : current);
  }
  if (!(await touchRecord(remote, path, current, now())))
    throw new VmLockedError(remote.id, vmUuid, undefined);
  const xo = xoLockOf(remote, vmUuid);
  if (xo) await pushAheadIfThere(xo, now() + staleAfterMs);
}
