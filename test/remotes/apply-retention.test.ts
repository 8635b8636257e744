import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '../../core/retention';
import { applyRetention } from '../../remotes/apply-retention';
import type { DeltaBackupMetadata } from '../../remotes/backup-metadata';
import { backupPaths, vmBackupDir } from '../../remotes/backup-paths';
import { withFaults } from '../../remotes/faulty';
import type { Remote } from '../../remotes/remote';
import { listVmBackups, writeBackupMetadata } from '../../remotes/repository';
import {
  DAY,
  fakeMerge,
  fullMetadata,
  JOB,
  readFakeVhdParent,
  restoreDisk,
  T0,
  tempRemote,
  VM,
  writeDeltaChain,
} from './fixtures';

let remote: Remote;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ remote, cleanup } = await tempRemote());
});
afterEach(() => cleanup());

const vmDir = vmBackupDir(VM);
const chainDir = `${vmDir}/vdis/${JOB}/vdi-a`;
const nightly = (remoteCount: number): RetentionPolicy => ({
  scheduleId: 'nightly',
  mode: 'delta',
  remote: remoteCount,
  timeZone: 'Europe/Paris',
});

/** What each backup restores to, by `<ts>`, for the backups that are ok. */
async function restorable(r: Remote): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const e of await listVmBackups(r, VM, { readVhdParent: readFakeVhdParent })) {
    if (e.status !== 'ok' || e.metadata?.mode !== 'delta') continue;
    out[e.basename] = await restoreDisk(r, `${vmDir}/${Object.values(e.metadata.vhds)[0]}`);
  }
  return out;
}

describe('applyRetention on delta chains', () => {
  it('keeps the last N, merging the removed oldest deltas into the full under the kept name', async () => {
    await writeDeltaChain(remote, 6);
    const before = await restorable(remote);
    const merge = fakeMerge();
    const report = await applyRetention(remote, VM, nightly(3), {
      mergeVhdIntoParent: merge.merge,
      readVhdParent: readFakeVhdParent,
    });

    expect(report.done).toEqual([
      `merge vdis/${JOB}/vdi-a/20261102T030000Z.vhd into its parent vdis/${JOB}/vdi-a/20261101T030000Z.vhd (the merged file takes the name vdis/${JOB}/vdi-a/20261102T030000Z.vhd)`,
      `merge vdis/${JOB}/vdi-a/20261103T030000Z.vhd into its parent vdis/${JOB}/vdi-a/20261102T030000Z.vhd (the merged file takes the name vdis/${JOB}/vdi-a/20261103T030000Z.vhd)`,
      `merge vdis/${JOB}/vdi-a/20261104T030000Z.vhd into its parent vdis/${JOB}/vdi-a/20261103T030000Z.vhd (the merged file takes the name vdis/${JOB}/vdi-a/20261104T030000Z.vhd)`,
      `update ${vmDir}/20261104T030000Z.json: vdis/${JOB}/vdi-a/20261104T030000Z.vhd is now a full disk`,
      `delete backup ${vmDir}/20261101T030000Z.json`,
      `delete backup ${vmDir}/20261102T030000Z.json`,
      `delete backup ${vmDir}/20261103T030000Z.json`,
    ]);
    expect(merge.calls).toEqual(
      ['20261102T030000Z', '20261103T030000Z', '20261104T030000Z'].map((ts) => `${chainDir}/${ts}.vhd`),
    );
    expect(await remote.list(chainDir)).toEqual([
      '20261104T030000Z.vhd',
      '20261105T030000Z.vhd',
      '20261106T030000Z.vhd',
    ]);

    const after = await restorable(remote);
    expect(Object.keys(after)).toEqual(['20261104T030000Z', '20261105T030000Z', '20261106T030000Z']);
    for (const [ts, disk] of Object.entries(after)) expect(disk).toEqual(before[ts]);

    const oldest = (await listVmBackups(remote, VM))[0]!.metadata as DeltaBackupMetadata;
    expect(oldest.isVhdDifferencing).toEqual({ 'OpaqueRef:disk-a.vhd': false });
    expect(oldest.size).toBe((await remote.stat(`${chainDir}/20261104T030000Z.vhd`)).size);
  });

  it('does nothing more when run again (idempotent)', async () => {
    await writeDeltaChain(remote, 5);
    const deps = { mergeVhdIntoParent: fakeMerge().merge, readVhdParent: readFakeVhdParent };
    await applyRetention(remote, VM, nightly(2), deps);
    const again = await applyRetention(remote, VM, nightly(2), deps);
    expect(again.done).toEqual([]);
  });

  it('a dry run explains and changes nothing', async () => {
    await writeDeltaChain(remote, 4);
    const merge = fakeMerge();
    const report = await applyRetention(
      remote,
      VM,
      nightly(1),
      { mergeVhdIntoParent: merge.merge, readVhdParent: readFakeVhdParent },
      { dryRun: true },
    );
    expect(report.decision.describe()).toEqual([
      `remove ${vmDir}/20261101T030000Z.json: older than the last 1`,
      `remove ${vmDir}/20261102T030000Z.json: older than the last 1`,
      `remove ${vmDir}/20261103T030000Z.json: older than the last 1`,
      `keep   ${vmDir}/20261104T030000Z.json: last 1 (#1)`,
    ]);
    expect(report.plan.operations.filter((o) => o.kind === 'merge')).toHaveLength(3);
    expect(report.done).toEqual([]);
    expect(merge.calls).toEqual([]);
    expect((await listVmBackups(remote, VM)).length).toBe(4);
  });

  it('a failed newest run does not cost a good backup', async () => {
    await writeDeltaChain(remote, 4);
    // newest metadata truncated: broken, not counted, removed; its VHD is then deleted as unneeded
    const newest = backupPaths(VM, T0 + 3 * DAY);
    await remote.writeFileAtomic(newest.metadata, '{"mode":"del');
    await applyRetention(remote, VM, nightly(2), {
      mergeVhdIntoParent: fakeMerge().merge,
      readVhdParent: readFakeVhdParent,
    });
    const entries = await listVmBackups(remote, VM, { readVhdParent: readFakeVhdParent });
    expect(entries.map((e) => [e.basename, e.status])).toEqual([
      ['20261102T030000Z', 'ok'],
      ['20261103T030000Z', 'ok'],
    ]);
    expect(await remote.list(chainDir)).toEqual(['20261102T030000Z.vhd', '20261103T030000Z.vhd']);
  });

  it('a full in the middle of the chain: the old chain is deleted, no merge', async () => {
    await writeDeltaChain(remote, 5, { fullEvery: 3 }); // fulls on day 0 and day 3
    const merge = fakeMerge();
    await applyRetention(remote, VM, nightly(2), {
      mergeVhdIntoParent: merge.merge,
      readVhdParent: readFakeVhdParent,
    });
    expect(merge.calls).toEqual([]);
    expect(await remote.list(chainDir)).toEqual(['20261104T030000Z.vhd', '20261105T030000Z.vhd']);
    expect(Object.keys(await restorable(remote))).toEqual(['20261104T030000Z', '20261105T030000Z']);
  });

  it('cleans data left without metadata: an XVA and an orphan VHD at the end of a chain', async () => {
    await writeDeltaChain(remote, 2);
    await remote.writeFileAtomic(`${vmDir}/20261120T030000Z.xva`, 'interrupted');
    await remote.writeFileAtomic(
      `${chainDir}/20261120T030000Z.vhd`,
      JSON.stringify({ uuid: 'x', parent: '20261102T030000Z.vhd', blocks: {} }),
    );
    await applyRetention(remote, VM, nightly(5), {
      mergeVhdIntoParent: fakeMerge().merge,
      readVhdParent: readFakeVhdParent,
    });
    expect(await remote.list(vmDir)).toEqual(['20261101T030000Z.json', '20261102T030000Z.json', 'vdis']);
    expect(await remote.list(chainDir)).toEqual(['20261101T030000Z.vhd', '20261102T030000Z.vhd']);
  });

  it('leaves other schedules alone and applies its own to full (XVA) backups', async () => {
    await writeDeltaChain(remote, 2);
    for (let i = 0; i < 4; i++) {
      const t = T0 + i * DAY + 3_600_000;
      await remote.writeFileAtomic(backupPaths(VM, t).xva, 'xva!');
      await remote.writeFileAtomic(backupPaths(VM, t).xvaChecksum, '$1$$0');
      await writeBackupMetadata(remote, fullMetadata(t));
    }
    const report = await applyRetention(
      remote,
      VM,
      { scheduleId: 'weekly-full', mode: 'full', remote: 2, timeZone: 'UTC' },
      { mergeVhdIntoParent: fakeMerge().merge, readVhdParent: readFakeVhdParent },
    );
    expect(report.decision.remove.map((r) => r.id)).toEqual([
      `${vmDir}/20261101T040000Z.json`,
      `${vmDir}/20261102T040000Z.json`,
    ]);
    const left = (await listVmBackups(remote, VM)).map((e) => `${e.basename} ${e.metadata?.mode}`);
    expect(left).toEqual([
      '20261101T030000Z delta',
      '20261102T030000Z delta',
      '20261103T040000Z full',
      '20261104T040000Z full',
    ]);
    expect(
      (await remote.list(vmDir)).filter((n) => n.includes('20261101T04') || n.includes('20261102T04')),
    ).toEqual([]);
  });
});

/** Fails the n-th mutating call (0-based), as a process killed at that instant would. */
function crashingAt(inner: Remote, n: number): Remote {
  let calls = 0;
  const gate = () => {
    if (calls++ === n) throw new Error(`crash (injected) at mutating call #${n}`);
  };
  return {
    ...inner,
    id: inner.id,
    url: inner.url,
    readFile: (p) => inner.readFile(p),
    createReadStream: (p, r) => inner.createReadStream(p, r),
    list: (d) => inner.list(d),
    stat: (p) => inner.stat(p),
    exists: (p) => inner.exists(p),
    checkWritable: () => inner.checkWritable(),
    createWriteStreamAtomic: (p) => inner.createWriteStreamAtomic(p),
    writeFileAtomic: async (p, d) => {
      gate();
      return inner.writeFileAtomic(p, d);
    },
    writeFileExclusive: async (p, d) => {
      gate();
      return inner.writeFileExclusive(p, d);
    },
    delete: async (p) => {
      gate();
      return inner.delete(p);
    },
    rename: async (f, t) => {
      gate();
      return inner.rename(f, t);
    },
    copy: async (f, t) => {
      gate();
      return inner.copy(f, t);
    },
  };
}

describe('applyRetention and the merge contract', () => {
  const deps = (merge: (r: Remote, p: string) => Promise<void>) => ({
    mergeVhdIntoParent: merge,
    readVhdParent: readFakeVhdParent,
  });

  it('calls a merge that returned early once more, then goes on', async () => {
    await writeDeltaChain(remote, 3);
    const real = fakeMerge();
    let calls = 0;
    const lazyOnce = async (r: Remote, p: string) => {
      if (calls++ === 0) return; // as if it had found and cleared a stale state file
      await real.merge(r, p);
    };
    await applyRetention(remote, VM, nightly(2), deps(lazyOnce));
    expect(calls).toBe(2);
    expect(await remote.list(chainDir)).toEqual(['20261102T030000Z.vhd', '20261103T030000Z.vhd']);
  });

  it('stops, naming the remote, when the merge never does its job; nothing is deleted', async () => {
    await writeDeltaChain(remote, 3);
    const before = await restorable(remote);
    await expect(
      applyRetention(
        remote,
        VM,
        nightly(2),
        deps(async () => {}),
      ),
    ).rejects.toMatchObject({
      remoteId: 'nas',
      code: 'EIO',
    });
    expect(await restorable(remote)).toEqual(before);
  });
});

describe('applyRetention after a crash at any step', () => {
  it('leaves every kept backup restorable to the same disk, and a re-run finishes the job', async () => {
    // Reference: the result without any crash.
    const reference = await tempRemote('ref');
    await writeDeltaChain(reference.remote, 7);
    const expected = await restorable(reference.remote);
    await applyRetention(reference.remote, VM, nightly(3), {
      mergeVhdIntoParent: fakeMerge().merge,
      readVhdParent: readFakeVhdParent,
    });
    const finalFiles = await reference.remote.list(chainDir);
    const finalRestorable = await restorable(reference.remote);
    await reference.cleanup();

    let crashes = 0;
    for (let crashAt = 0; ; crashAt++) {
      const t = await tempRemote();
      try {
        await writeDeltaChain(t.remote, 7);
        const outcome = await applyRetention(crashingAt(t.remote, crashAt), VM, nightly(3), {
          mergeVhdIntoParent: fakeMerge({ crashAfterWrite: () => crashAt % 2 === 1 && crashes % 3 === 0 })
            .merge,
          readVhdParent: readFakeVhdParent,
        }).then(
          () => 'finished',
          () => 'crashed',
        );
        // Whatever happened, the backups that will be kept restore exactly as before.
        const now = await restorable(t.remote);
        for (const ts of Object.keys(finalRestorable))
          expect(now[ts], `${ts} after crash #${crashAt}`).toEqual(expected[ts]);
        // And a plain re-run reaches the same end state.
        await applyRetention(t.remote, VM, nightly(3), {
          mergeVhdIntoParent: fakeMerge().merge,
          readVhdParent: readFakeVhdParent,
        });
        expect(await t.remote.list(chainDir)).toEqual(finalFiles);
        expect(await restorable(t.remote)).toEqual(finalRestorable);
        if (outcome === 'finished') break;
        crashes++;
      } finally {
        await t.cleanup();
      }
    }
    expect(crashes).toBeGreaterThan(3);
  });
});

describe('applyRetention on a failing remote', () => {
  it('an unwritable remote fails with a RemoteError naming it, and nothing kept is lost', async () => {
    await writeDeltaChain(remote, 5);
    const before = await restorable(remote);
    const faulty = withFaults(remote, { unwritable: true });
    const deps = { mergeVhdIntoParent: fakeMerge().merge, readVhdParent: readFakeVhdParent };
    await expect(applyRetention(faulty, VM, nightly(2), deps)).rejects.toMatchObject({
      remoteId: 'nas',
      code: 'EACCES',
    });
    expect(await restorable(remote)).toEqual(before);
    faulty.faults.unwritable = false;
    await applyRetention(faulty, VM, nightly(2), deps);
    expect(Object.keys(await restorable(remote))).toEqual(['20261104T030000Z', '20261105T030000Z']);
  });

  it('a vanished remote fails with UNAVAILABLE naming it', async () => {
    await writeDeltaChain(remote, 3);
    const faulty = withFaults(remote, { vanished: true });
    const before = await restorable(remote);
    await expect(
      applyRetention(faulty, VM, nightly(1), {
        mergeVhdIntoParent: fakeMerge().merge,
        readVhdParent: readFakeVhdParent,
      }),
    ).rejects.toMatchObject({ remoteId: 'nas', code: 'UNAVAILABLE' });
    expect(await restorable(remote)).toEqual(before);
  });
});
