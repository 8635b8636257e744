import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Remote } from '../../remotes/remote';
import { acquireVmLock, refreshVmLock, VmLockedError, vmLockPath } from '../../remotes/vm-lock';
import { tempRemote, VM } from './fixtures';

let remote: Remote;
let cleanup: () => Promise<void>;
let clock: number;
const now = () => clock;
const opts = { staleAfterMs: 60_000, now };

beforeEach(async () => {
  ({ remote, cleanup } = await tempRemote());
  clock = Date.UTC(2026, 10, 26, 3, 0);
});
afterEach(() => cleanup());

describe('per-VM lock on a remote', () => {
  it('lets one owner in and keeps a second one out, naming the holder', async () => {
    const lock = await acquireVmLock(remote, VM, 'run-A', opts);
    const error = await acquireVmLock(remote, VM, 'run-B', opts).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VmLockedError);
    expect(String(error)).toContain('"run-A"');
    expect(String(error)).toContain('"nas"');
    await lock.release();
    const next = await acquireVmLock(remote, VM, 'run-B', opts);
    expect(JSON.parse((await remote.readFile(vmLockPath(VM))).toString())).toMatchObject({ owner: 'run-B' });
    await next.release();
    await next.release();
    expect(await remote.exists(vmLockPath(VM))).toBe(false);
  });

  it('takes over a lock not refreshed for longer than staleAfterMs, not before', async () => {
    const dead = await acquireVmLock(remote, VM, 'run-A', opts);
    clock += 60_000;
    await expect(acquireVmLock(remote, VM, 'run-B', opts)).rejects.toBeInstanceOf(VmLockedError);
    clock += 1;
    const lock = await acquireVmLock(remote, VM, 'run-B', opts);
    // the presumed-dead holder finds out on its next refresh, and its release leaves B's lock alone
    await expect(dead.refresh()).rejects.toBeInstanceOf(VmLockedError);
    await dead.release();
    expect(JSON.parse((await remote.readFile(vmLockPath(VM))).toString())).toMatchObject({ owner: 'run-B' });
    await lock.release();
  });

  it('refresh keeps a live holder from being taken over', async () => {
    const lock = await acquireVmLock(remote, VM, 'run-A', opts);
    clock += 50_000;
    await lock.refresh();
    clock += 50_000;
    await expect(acquireVmLock(remote, VM, 'run-B', opts)).rejects.toBeInstanceOf(VmLockedError);
    await lock.release();
  });

  it('the same owner (a retried activity of the same run) takes its lock back at once', async () => {
    await acquireVmLock(remote, VM, 'run-A', opts);
    const again = await acquireVmLock(remote, VM, 'run-A', opts);
    await again.release();
    expect(await remote.exists(vmLockPath(VM))).toBe(false);
  });

  it("the same owner takes its lock back while its own keeper refreshes it (the run's release)", async () => {
    await acquireVmLock(remote, VM, 'run-A', opts);
    // The keeper is cancelled but not awaited before the release: its refresh lands between the
    // release's two reads of the lock record.
    let reads = 0;
    const racing = new Proxy(remote, {
      get(target, key, receiver) {
        if (key !== 'readFile') return Reflect.get(target, key, receiver);
        return async (path: string) => {
          if (path === vmLockPath(VM) && ++reads === 2) {
            clock += 1_000;
            await refreshVmLock(remote, VM, 'run-A', opts);
          }
          return target.readFile(path);
        };
      },
    });
    const again = await acquireVmLock(racing, VM, 'run-A', opts);
    expect(reads).toBeGreaterThanOrEqual(2);
    await again.release();
    expect(await remote.exists(vmLockPath(VM))).toBe(false);
  });

  it('treats an unreadable (truncated) lock by its age', async () => {
    await remote.writeFileAtomic(vmLockPath(VM), '{"owner":');
    const fileTime = (await remote.stat(vmLockPath(VM))).mtimeMs;
    clock = fileTime + 1_000;
    await expect(acquireVmLock(remote, VM, 'run-B', opts)).rejects.toThrow(/unreadable lock/);
    clock = fileTime + 61_000;
    const lock = await acquireVmLock(remote, VM, 'run-B', opts);
    await lock.release();
  });

  it('locks are per VM', async () => {
    const a = await acquireVmLock(remote, VM, 'run-A', opts);
    const b = await acquireVmLock(remote, '0f1e2d3c-aaaa-4bbb-8ccc-000000000009', 'run-B', opts);
    await a.release();
    await b.release();
  });

  it('requires an explicit positive stale timeout', async () => {
    await expect(acquireVmLock(remote, VM, 'run-A', { staleAfterMs: 0 })).rejects.toThrow(/staleAfterMs/);
  });
});
