// The SMB path that this machine can run for real: a real samba server (smbd on loopback) reached
// through a real SMB client (smbnetfs over FUSE), used as the mounted folder our SMB remote becomes
// after `mount -t cifs` (which this kernel cannot do; that step's failure is tested in mounted.test).
// The whole Remote contract runs on it.
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalRemote } from '../../remotes/local';
import { type SmbTestServer, startSmbServer } from '../helpers/smb-server';
import { describeRemoteConformance } from './conformance';

let server: SmbTestServer;
beforeAll(async () => {
  server = await startSmbServer();
}, 60_000);
afterAll(() => server?.close());

describeRemoteConformance(
  'SMB share (samba through smbnetfs)',
  async () => {
    const name = `t-${randomBytes(4).toString('hex')}`;
    const root = path.join(server.mounted, name);
    await mkdir(root);
    const remote = createLocalRemote({ id: 'nas', root, url: `smb://127.0.0.1/backups/${name}` });
    // Removing the folder on the server side: the share no longer has the remote's root.
    const gone = () => rm(path.join(server.shareDir, name), { recursive: true, force: true });
    return { remote, seed: remote, vanish: gone, cleanup: gone };
  },
  { writable: true, positionalReads: true },
);

describe('SMB share', () => {
  it('is the real server: a file written through the client is on the share, byte for byte', async () => {
    const root = path.join(server.mounted, 'direct');
    await mkdir(root, { recursive: true });
    const remote = createLocalRemote({ id: 'nas', root });
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await remote.writeFileAtomic('d/blob.bin', data);
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(path.join(server.shareDir, 'direct', 'd', 'blob.bin'))).equals(data)).toBe(true);
  });
});
