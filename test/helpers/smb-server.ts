// A real SMB server for the tests: Debian's samba (`smbd`) with its own smb.conf, state and share
// folders, on loopback, reached through smbnetfs (a FUSE SMB client: this machine's kernel has no
// CIFS client) mounted in a temporary folder. libsmbclient only dials port 445, so the server takes
// 127.0.0.1:445; one per test file that needs it. .ci/run installs samba and smbnetfs.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface SmbTestServer {
  /** The share as this process sees it through smbnetfs. */
  mounted: string;
  /** The share's folder on the server side (for checks behind the client's back). */
  shareDir: string;
  close(): Promise<void>;
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up within 10 s`);
}

export async function startSmbServer(): Promise<SmbTestServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-smb-'));
  const shareDir = path.join(dir, 'share');
  for (const sub of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'share', 'home/.smb', 'mnt'])
    await mkdir(path.join(dir, sub), { recursive: true });
  const conf = path.join(dir, 'smb.conf');
  const password = randomBytes(9).toString('base64url');
  await writeFile(
    conf,
    [
      '[global]',
      '  workgroup = LAB',
      '  server role = standalone server',
      '  smb ports = 445',
      '  interfaces = lo',
      '  bind interfaces only = yes',
      ...['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc'].map(
        (s) =>
          `  ${s === 'ncalrpc' ? 'ncalrpc dir' : `${s} directory`.replace('private directory', 'private dir')} = ${path.join(dir, s)}`,
      ),
      `  log file = ${path.join(dir, 'log')}`,
      `  passdb backend = tdbsam:${path.join(dir, 'private', 'passdb.tdb')}`,
      '  disable netbios = yes',
      '  server min protocol = SMB2',
      '[backups]',
      `  path = ${shareDir}`,
      '  read only = no',
      '',
    ].join('\n'),
  );
  const add = spawn('smbpasswd', ['-c', conf, '-a', '-s', 'root'], { stdio: ['pipe', 'ignore', 'pipe'] });
  add.stdin!.end(`${password}\n${password}\n`);
  await new Promise((resolve, reject) =>
    add.on('close', (c) => (c === 0 ? resolve(c) : reject(new Error(`smbpasswd exited ${c}`)))),
  );
  // Its own process group, so close() stops smbd and the helpers it forks in one signal.
  const smbd: ChildProcess = spawn('smbd', ['-F', '--no-process-group', '-s', conf], {
    stdio: 'ignore',
    detached: true,
  });
  const home = path.join(dir, 'home');
  await writeFile(path.join(home, '.smb', 'smb.conf'), '[global]\n  client min protocol = SMB2\n');
  const netfsConf = path.join(home, '.smb', 'smbnetfs.conf');
  await writeFile(
    netfsConf,
    `auth "127.0.0.1" "root" "${password}"\nhost 127.0.0.1 visible=true\nsmb_query_browsers false\n`,
    {
      mode: 0o600,
    },
  );
  const mnt = path.join(dir, 'mnt');
  const mounted = path.join(mnt, '127.0.0.1', 'backups');
  try {
    await waitFor(async () => (await exec('ss', ['-ltn', 'sport = :445'])).stdout.includes(':445'), 'smbd');
    // It daemonizes: no pipes, or the daemon would hold them open; wait for the launcher to exit.
    const netfs = spawn('smbnetfs', [mnt, '-o', `config=${netfsConf}`], {
      env: { ...process.env, HOME: home },
      stdio: 'ignore',
    });
    const code = await new Promise((resolve) => netfs.on('exit', resolve));
    if (code !== 0) throw new Error(`smbnetfs exited with ${code}`);
    await waitFor(() => access(mounted).then(() => true), 'the share through smbnetfs');
  } catch (error) {
    if (smbd.pid !== undefined) process.kill(-smbd.pid, 'SIGKILL');
    throw error;
  }
  return {
    mounted,
    shareDir,
    async close() {
      // Unmount the client while the server still answers; never walk into a live mount below.
      let unmounted = await exec('fusermount', ['-u', mnt], { timeout: 10_000 }).then(
        () => true,
        () => false,
      );
      if (!unmounted)
        unmounted = await exec('fusermount', ['-u', '-z', mnt], { timeout: 10_000 }).then(
          () => true,
          () => false,
        );
      if (smbd.pid !== undefined) process.kill(-smbd.pid, 'SIGKILL');
      if (unmounted) await rm(dir, { recursive: true, force: true });
    },
  };
}
