// The VM lock against Xen Orchestra's own: XO (on file remotes) locks a VM folder with
// proper-lockfile's defaults, `lockfile.lock('<remote>/xo-vm-backups/<vmUuid>')`. The real library
// plays XO here, in this process and in killed child processes.
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Remote } from '../../remotes/remote';
import {
  acquireVmLock,
  refreshVmLock,
  VmLockedError,
  vmLockPath,
  XO_LOCK_STALE_MS,
} from '../../remotes/vm-lock';
import { repoRoot } from '../helpers/cli';
import { tempRemote, VM } from './fixtures';

let remote: Remote;
let root: string;
let cleanup: () => Promise<void>;
const vmFolder = () => path.join(root, 'xo-vm-backups', VM);

beforeEach(async () => {
  ({ remote, root, cleanup } = await tempRemote());
});
afterEach(() => cleanup());

/** Takes our lock in a child process that then dies by kill -9 (no release, no refresh). */
async function lockInKilledProcess(staleAfterMs: number): Promise<void> {
  const script = `
    import { createLocalRemote } from './remotes/local';
    import { acquireVmLock } from './remotes/vm-lock';
    const remote = createLocalRemote({ id: 'nas', root: ${JSON.stringify(root)} });
    await acquireVmLock(remote, ${JSON.stringify(VM)}, 'crashed-run', { staleAfterMs: ${staleAfterMs} });
    console.log('locked');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('locked') && resolve());
    child.on('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

describe('the VM lock interlocks with Xen Orchestra', () => {
  it('takes the same lock folder XO takes, so XO is kept out while we hold it (however long)', async () => {
    const lock = await acquireVmLock(remote, VM, 'run-A', { staleAfterMs: 10 * 60_000 });
    const folder = `${vmFolder()}.lock`;
    expect((await stat(folder)).isDirectory()).toBe(true);
    // XO's proper-lockfile calls it fresh: the folder is kept alive until our own stale time.
    await expect(lockfile.lock(vmFolder())).rejects.toMatchObject({ code: 'ELOCKED' });
    expect(await lockfile.check(vmFolder())).toBe(true);
    expect((await stat(folder)).mtimeMs).toBeGreaterThan(Date.now() + 10 * 60_000 - 2 * XO_LOCK_STALE_MS);
    await lock.release();
    await expect(stat(folder)).rejects.toMatchObject({ code: 'ENOENT' });
    const xo = await lockfile.lock(vmFolder());
    await xo();
  });

  it('a VM locked by XO is refused with a reason naming XO, leaving nothing of ours behind', async () => {
    await remote.writeFileAtomic(`xo-vm-backups/${VM}/20261101T030000Z.json`, '{}');
    const release = await lockfile.lock(vmFolder()); // XO's backup of this VM, refreshing every 5 s
    try {
      const error = await acquireVmLock(remote, VM, 'run-A', { staleAfterMs: 60_000 }).catch((e) => e);
      expect(error).toBeInstanceOf(VmLockedError);
      expect(String(error)).toMatch(/locked by Xen Orchestra .*xo-vm-backups\/.*\.lock/);
      expect(await remote.exists(vmLockPath(VM))).toBe(false);
    } finally {
      await release();
    }
    const lock = await acquireVmLock(remote, VM, 'run-A', { staleAfterMs: 60_000 });
    await lock.release();
  });

  it("a crashed holder's lock is taken over after the stale period, by us and by XO alike", async () => {
    const staleAfterMs = 3_000;
    await lockInKilledProcess(staleAfterMs);
    const before = await acquireVmLock(remote, VM, 'run-B', { staleAfterMs }).catch((e) => e);
    expect(String(before)).toContain('"crashed-run"');
    expect(await lockfile.check(vmFolder())).toBe(true); // XO waits too
    await new Promise((r) => setTimeout(r, staleAfterMs + 200));
    expect(await lockfile.check(vmFolder())).toBe(false); // stale for XO at the same moment
    const lock = await acquireVmLock(remote, VM, 'run-B', { staleAfterMs });
    expect(JSON.parse((await remote.readFile(vmLockPath(VM))).toString())).toMatchObject({ owner: 'run-B' });
    await lock.release();
  });

  it('refreshes by the owner keep the lock from going stale; another run cannot refresh it', async () => {
    const staleAfterMs = 2_000;
    const lock = await acquireVmLock(remote, VM, 'run-A', { staleAfterMs });
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 500));
      await refreshVmLock(remote, VM, 'run-A', { staleAfterMs }); // from any worker (no lock object)
    }
    await expect(acquireVmLock(remote, VM, 'run-B', { staleAfterMs })).rejects.toBeInstanceOf(VmLockedError);
    await expect(lockfile.lock(vmFolder())).rejects.toMatchObject({ code: 'ELOCKED' });
    await expect(refreshVmLock(remote, VM, 'run-B', { staleAfterMs })).rejects.toBeInstanceOf(VmLockedError);
    await lock.release();
  });

  it('a refresh racing with the release never brings the lock back', async () => {
    const lock = await acquireVmLock(remote, VM, 'run-A', { staleAfterMs: 60_000 });
    await lock.release();
    await expect(refreshVmLock(remote, VM, 'run-A', { staleAfterMs: 60_000 })).rejects.toBeInstanceOf(
      VmLockedError,
    );
    expect(await remote.exists(vmLockPath(VM))).toBe(false);
    await expect(stat(`${vmFolder()}.lock`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a lock folder of ours left without its owner record (a release cut short) is taken over at once', async () => {
    const first = await acquireVmLock(remote, VM, 'run-A', { staleAfterMs: 60_000 });
    await remote.delete(vmLockPath(VM)); // the record removed, the folder not (yet)
    const second = await acquireVmLock(remote, VM, 'run-B', { staleAfterMs: 60_000 });
    await expect(lockfile.lock(vmFolder())).rejects.toMatchObject({ code: 'ELOCKED' });
    await second.release();
    await first.release(); // not its lock any more: leaves nothing, breaks nothing
    await expect(stat(`${vmFolder()}.lock`)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
