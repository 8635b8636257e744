import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { withFaults } from '../../remotes/faulty';
import { createLocalRemote } from '../../remotes/local';
import { openRemote } from '../../remotes/open-remote';
import { readOnly } from '../../remotes/readonly';
import { isRemoteError } from '../../remotes/remote';
import { describeRemoteConformance, type RemoteUnderTest } from './conformance';

async function localUnderTest(): Promise<RemoteUnderTest & { root: string }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'xcpb-remote-'));
  const remote = createLocalRemote({ id: 'nas', root });
  return {
    root,
    remote,
    seed: remote,
    vanish: () => rm(root, { recursive: true, force: true }),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

describeRemoteConformance('local', localUnderTest, { writable: true, positionalReads: true });

describeRemoteConformance(
  'local through openRemote(file://)',
  async () => {
    const t = await localUnderTest();
    const remote = openRemote({ id: 'nas', url: `file://${t.root}` });
    return { ...t, remote, seed: remote };
  },
  { writable: true, positionalReads: true },
);

describeRemoteConformance(
  'local wrapped by withFaults (no fault switched on)',
  async () => {
    const t = await localUnderTest();
    return { ...t, remote: withFaults(t.remote) };
  },
  { writable: true },
);

describeRemoteConformance(
  'local wrapped by readOnly',
  async () => {
    const t = await localUnderTest();
    return { ...t, remote: readOnly(t.remote) };
  },
  { writable: false, positionalReads: true },
);

describe('local remote specifics', () => {
  it('checkWritable fails with a RemoteError naming the remote when the root is not writable', async () => {
    if (process.getuid?.() === 0) {
      // root ignores permission bits: prove the same failure through the fault decorator instead.
      const t = await localUnderTest();
      const faulty = withFaults(t.remote, { unwritable: true });
      await expect(faulty.checkWritable()).rejects.toMatchObject({ remoteId: 'nas', code: 'EACCES' });
      await t.cleanup();
      return;
    }
    const t = await localUnderTest();
    await chmod(t.root, 0o500);
    try {
      const error = await t.remote.checkWritable().catch((e: unknown) => e);
      expect(isRemoteError(error, 'EACCES')).toBe(true);
      expect(String(error)).toContain('"nas"');
    } finally {
      await chmod(t.root, 0o700);
      await t.cleanup();
    }
  });

  it('a missing root is UNAVAILABLE, not an empty remote', async () => {
    const t = await localUnderTest();
    await t.vanish();
    await expect(t.remote.exists('xo-vm-backups')).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      remoteId: 'nas',
    });
    expect((await stat(os.tmpdir())).isDirectory()).toBe(true);
  });
});

describe('openRemote', () => {
  it('names the remote and the scheme it does not support', () => {
    for (const scheme of ['ftp', 'sftp']) {
      let error: unknown;
      try {
        openRemote({ id: 'offsite', url: `${scheme}://host/path` });
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: 'UNSUPPORTED', remoteId: 'offsite' });
      expect(String(error)).toContain('"offsite"');
      expect(String(error)).toContain(`"${scheme}"`);
    }
  });

  it('rejects an invalid URL with the remote id', () => {
    expect(() => openRemote({ id: 'x', url: 'not a url' })).toThrow(/remote "x"/);
  });
});
