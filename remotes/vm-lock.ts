// One writer per VM folder on a remote: two runs must never write (or merge) the same VM's chains at
// once. A lock file created exclusively, holding who took it and when; a holder that stops refreshing
// it for longer than `staleAfterMs` is presumed dead and the lock can be taken over. The same owner
// (a retried activity of the same run on another worker) takes its own lock back at once.
//
// Not interlocked with Xen Orchestra's own lock (a `proper-lockfile` folder `<vmUuid>.lock`): do not
// point XO and xcp-backup at the same VM folder at the same time.
import { randomBytes } from 'node:crypto';
import { vmBackupDir } from './backup-paths';
import { isRemoteError, type Remote } from './remote';

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

export class VmLockedError extends Error {
  override readonly name = 'VmLockedError';
  constructor(
    readonly remoteId: string,
    readonly vmUuid: string,
    readonly holder: VmLockContent | undefined,
  ) {
    super(
      `remote ${JSON.stringify(remoteId)}: VM ${vmUuid} is locked by ${
        holder
          ? `${JSON.stringify(holder.owner)} since ${new Date(holder.acquiredAt).toISOString()}`
          : 'an unreadable lock'
      }`,
    );
  }
}

export interface VmLockOptions {
  /** How long without a refresh before a lock is presumed abandoned. Explicit: there is no default. */
  staleAfterMs: number;
  /** Injected clock (tests). */
  now?: () => number;
}

export const vmLockPath = (vmUuid: string): string => `${vmBackupDir(vmUuid)}.xcpb-lock.json`;

async function readLock(remote: Remote, path: string): Promise<VmLockContent | 'missing' | 'unreadable'> {
  try {
    const content = JSON.parse((await remote.readFile(path)).toString()) as VmLockContent;
    if (typeof content.owner !== 'string' || typeof content.refreshedAt !== 'number') return 'unreadable';
    return content;
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
  const content = (): string =>
    JSON.stringify({ owner, token, acquiredAt, refreshedAt: now() } satisfies VmLockContent);

  const lock: VmLock = {
    path,
    owner,
    async refresh() {
      const current = await readLock(remote, path);
      if (typeof current === 'string' || current.token !== token) {
        throw new VmLockedError(remote.id, vmUuid, typeof current === 'string' ? undefined : current);
      }
      await remote.writeFileAtomic(path, content());
    },
    async release() {
      const current = await readLock(remote, path);
      if (typeof current !== 'string' && current.token === token) await remote.delete(path);
    },
  };

  // Two attempts: the second after removing a stale (or our own) lock.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await remote.writeFileExclusive(path, content());
      return lock;
    } catch (error) {
      if (!isRemoteError(error, 'EEXIST')) throw error;
    }
    const holder = await readLock(remote, path);
    if (holder === 'missing') continue; // released meanwhile
    const lastSign =
      holder === 'unreadable'
        ? ((await remote.stat(path).catch(() => undefined))?.mtimeMs ?? 0)
        : holder.refreshedAt;
    const takeOver = (holder !== 'unreadable' && holder.owner === owner) || now() - lastSign > staleAfterMs;
    if (!takeOver || attempt === 1)
      throw new VmLockedError(remote.id, vmUuid, holder === 'unreadable' ? undefined : holder);
    // Delete only what we judged: if it changed meanwhile, someone live holds it.
    const again = await readLock(remote, path);
    if (JSON.stringify(again) !== JSON.stringify(holder)) {
      throw new VmLockedError(remote.id, vmUuid, typeof again === 'string' ? undefined : again);
    }
    await remote.delete(path);
  }
  throw new VmLockedError(remote.id, vmUuid, undefined);
}
