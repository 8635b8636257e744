// SMB and NFS remotes: the real `mount` is run (this machine's kernel has neither a CIFS nor an NFS
// client, so it fails for real) and the failure reaches the caller as a RemoteError naming the
// remote with mount's own reason; the SMB password goes through a credentials file of mode 600,
// never on the command line, and the file is gone after the attempt.
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMountedRemote, type MountRunner, mountTarget, runCommand } from '../../remotes/mounted';
import { openRemote } from '../../remotes/open-remote';
import { describeRemoteConformance } from './conformance';

let mountRoot: string;
beforeEach(async () => {
  mountRoot = await mkdtemp(path.join(os.tmpdir(), 'xcpb-mounts-'));
});
afterEach(() => rm(mountRoot, { recursive: true, force: true }));

/** The real mount, observed: arguments, and the credentials file's mode while mount runs. */
function observedMount() {
  const calls: { args: string[]; credentialsMode?: number }[] = [];
  const run: MountRunner = async (command, args) => {
    const option = args[args.indexOf('-o') + 1] ?? '';
    const credentials = /credentials=([^,]+)/.exec(option)?.[1];
    calls.push({ args, credentialsMode: credentials ? (await stat(credentials)).mode & 0o777 : undefined });
    return runCommand(command, args);
  };
  return { run, calls };
}

describe('SMB and NFS remotes (mounted)', () => {
  it('maps URLs to what mount takes', () => {
    expect(mountTarget('a', 'smb://nas.lan/backups/xcpb/site-a')).toEqual({
      type: 'cifs',
      device: '//nas.lan/backups',
      subPath: 'xcpb/site-a',
    });
    expect(mountTarget('b', 'nfs://filer/export/xcpb')).toEqual({
      type: 'nfs',
      device: 'filer:/export/xcpb',
      subPath: '',
    });
    expect(() => mountTarget('c', 'smb://host')).toThrow(/remote "c".*smb:\/\/host\/share/);
  });

  it("an SMB share that cannot be mounted fails with mount's reason; the password never on a command line", async () => {
    const { run, calls } = observedMount();
    const remote = createMountedRemote(
      {
        id: 'nas',
        url: 'smb://127.0.0.1/backups/xcpb',
        domain: 'LAB',
        username: 'backup',
        password: async () => 's3cret-Pa55',
      },
      mountRoot,
      run,
    );
    const error = await remote.checkWritable().catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'RemoteError', remoteId: 'nas', code: 'UNAVAILABLE' });
    // This kernel has no CIFS client: mount says so, and the user reads it.
    expect(String(error)).toMatch(/cannot mount \/\/127\.0\.0\.1\/backups \(cifs\) on .*: mount: .*cifs/);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args.slice(0, 4)).toEqual([
      '-t',
      'cifs',
      '//127.0.0.1/backups',
      path.join(mountRoot, 'nas'),
    ]);
    expect(calls[0]!.args.join(' ')).not.toContain('s3cret');
    expect(calls[0]!.credentialsMode).toBe(0o600);
    expect(await readdir(mountRoot)).toEqual(['nas']); // the credentials file is gone
    // The next use tries again (a share back online is used without a restart).
    await expect(remote.list('')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(calls).toHaveLength(2);
  });

  it('an NFS export that cannot be mounted fails the same way, with its mount options', async () => {
    const { run, calls } = observedMount();
    const remote = createMountedRemote(
      { id: 'filer', url: 'nfs://127.0.0.1/export/xcpb', mountOptions: 'vers=4.1,soft' },
      mountRoot,
      run,
    );
    const error = await remote.readFile('x').catch((e: unknown) => e);
    expect(error).toMatchObject({ remoteId: 'filer', code: 'UNAVAILABLE' });
    expect(String(error)).toMatch(/cannot mount 127\.0\.0\.1:\/export\/xcpb \(nfs\).*nfs/);
    expect(calls[0]!.args).toEqual([
      '-t',
      'nfs',
      '127.0.0.1:/export/xcpb',
      path.join(mountRoot, 'filer'),
      '-o',
      'vers=4.1,soft',
    ]);
  });

  it('openRemote builds them with the password as a secret reference, and only where a mount folder is given', async () => {
    expect(() => openRemote({ id: 'nas', url: 'smb://host/share' })).toThrow(/mounted by a worker/);
    const remote = openRemote(
      {
        id: 'nas',
        url: 'smb://127.0.0.1/share',
        username: 'u',
        password: { env: 'XCPB_TEST_SMB_PASSWORD_UNSET' },
      },
      { mountRoot },
    );
    // The reference is resolved when the share is mounted: an unset variable is named, not a value.
    await expect(remote.checkWritable()).rejects.toThrow(
      /remotes\.nas\.password: environment variable XCPB_TEST_SMB_PASSWORD_UNSET is not set/,
    );
  });
});

// Once mounted, the share is used through the remote as a folder: the whole Remote contract holds
// through the mounted remote's wrapper. The mount is real but a bind mount of a local folder (this
// kernel has neither client), made by the runner in place of mount's cifs/nfs types.
describeRemoteConformance(
  'SMB remote once mounted (a bind mount standing in for cifs)',
  async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-mounted-'));
    const backing = path.join(dir, 'share');
    await mkdir(backing);
    const bind: MountRunner = (command, args) =>
      command === 'mount' ? runCommand('mount', ['--bind', backing, args[3]]) : runCommand(command, args);
    const remote = createMountedRemote(
      { id: 'nas', url: 'smb://filer/backups/xcpb/site-a', username: 'u', password: async () => 'p' },
      path.join(dir, 'mounts'),
      bind,
    );
    await remote.checkWritable();
    return {
      remote,
      seed: remote,
      // the share's folder of this remote is gone (removed on the server)
      vanish: () => rm(path.join(backing, 'xcpb'), { recursive: true, force: true }),
      cleanup: async () => {
        await remote.unmount();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  { writable: true, positionalReads: true },
);
