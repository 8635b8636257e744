// File-level restore end to end: real disk images (sfdisk + mke2fs -d + mkfs.vfat/mcopy) as VM disks
// in the simulator, a full then a delta backup after the guest changed files, then `xcpb files ls`
// and `xcpb files get` (the real command) at each point: every file equals the one put there.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBackupId } from '../../core/restore-backup-id';
import { MAIN_QUEUE } from '../../core/task-queues';
import { openBackupFiles } from '../../remotes/backup-files';
import { openRemote } from '../../remotes/open-remote';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { runXcpb } from '../helpers/cli';
import { ext4Image, fatImage, makeTree, placeAt, sh, sha256, sparseFile } from './images';

const MiB = 1 << 20;
const GiB = 1 << 30;
let stack: BackupStack;
let dir: string;
let configFile: string;
const P1_OFFSET = 1 * MiB;
const P1_SIZE = 100 * MiB;
const BIG_FILE = 4 * GiB + 5 * MiB; // more than 4 GiB, sparse
const bigTail = Buffer.from('the end of a file larger than 4 GiB\n');

const v1 = {
  'etc/hostname': 'web-1\n',
  'home/ünïcødé/notes €.txt': 'UTF-8 everywhere\n',
  'var/data.bin': Buffer.from(Array.from({ length: 3 * MiB }, (_, i) => (i * 2654435761) >>> 24)),
};

async function sh256(file: string) {
  return sha256(await readFile(file));
}

beforeAll(async () => {
  dir = path.join((await import('node:os')).tmpdir(), `xcpb-files-e2e-${process.pid}`);
  await mkdir(dir, { recursive: true });
  // disk 0: MBR, 1 = ext4 (files, a symlink, a sparse file), 2 = FAT32
  const src = path.join(dir, 'src');
  await makeTree(src, v1);
  await symlink('../etc/hostname', path.join(src, 'home/link'));
  await sparseFile(path.join(src, 'var/sparse.img'), 50 * MiB);
  await writeFile(path.join(src, 'var/sparse.img'), 'head', { flag: 'r+' });
  const disk0 = path.join(dir, 'disk0.raw');
  await sparseFile(disk0, 200 * MiB);
  await sh('bash', ['-c', `printf 'label: dos\\n1MiB,100MiB,83\\n,,c\\n' | sfdisk -q "$0"`, disk0]);
  await ext4Image(path.join(dir, 'p1.img'), P1_SIZE, src);
  await placeAt(disk0, path.join(dir, 'p1.img'), P1_OFFSET);
  const fatSrc = path.join(dir, 'fatsrc');
  await makeTree(fatSrc, { 'BOOT/grub.cfg': 'menuentry\n', 'Long File Name.txt': 'fat\n' });
  await fatImage(path.join(dir, 'p2.img'), 98 * MiB, 32, fatSrc, 'BOOT');
  await placeAt(disk0, path.join(dir, 'p2.img'), 101 * MiB);
  // disk 1: a bare ext4 filesystem on a sparse 5 GiB disk with a file of more than 4 GiB
  const bigSrc = path.join(dir, 'bigsrc');
  await mkdir(bigSrc);
  await sparseFile(path.join(bigSrc, 'huge.bin'), BIG_FILE);
  await writeFile(path.join(bigSrc, 'huge.bin'), bigTail, { flag: 'r+' }).then(async () => {
    const { open } = await import('node:fs/promises');
    const fh = await open(path.join(bigSrc, 'huge.bin'), 'r+');
    await fh.write(bigTail, 0, bigTail.length, BIG_FILE - bigTail.length);
    await fh.close();
  });
  await ext4Image(path.join(dir, 'disk1.raw'), 5 * GiB, bigSrc);

  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'lab-secret-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '16GiB', default: true }],
          networks: [{ id: 'net0', name: 'Network 0' }],
          vms: [
            {
              name: 'web',
              tags: ['files'],
              power: 'Running' as const,
              disks: [
                { name: 'root', size: '200MiB', content: { type: 'image' as const, path: disk0 } },
                {
                  name: 'big',
                  size: '5GiB',
                  content: { type: 'image' as const, path: path.join(dir, 'disk1.raw') },
                },
              ],
            },
          ],
        },
      ],
    },
    jobs: [
      {
        id: 'files',
        mode: 'delta',
        vms: { tags: ['files'] },
        remotes: ['nas'],
        schedules: [{ id: 'daily', cron: '0 3 * * *', retention: { remote: 5, snapshot: 1 } }],
      },
    ],
  });
  configFile = await stack.writeConfigFile();
}, 600_000);

afterAll(async () => {
  await stack?.close();
  await sh('rm', ['-rf', dir]);
});

async function newestBackupId(): Promise<string> {
  const r = await runXcpb(['backups', 'list', '--config', configFile, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const rows = JSON.parse(r.stdout).backups as { id: string; time: string }[];
  return rows.sort((a, b) => a.time.localeCompare(b.time)).at(-1)!.id;
}

/** The guest rewrites /etc/hostname (debugfs on the partition), written into the VM's disk. */
async function guestChangesHostname(text: string): Promise<void> {
  const p1 = path.join(dir, 'p1.img');
  const before = await readFile(p1);
  await writeFile(path.join(dir, 'hostname'), text);
  await sh('debugfs', ['-w', '-R', 'rm /etc/hostname', p1]);
  await sh('debugfs', ['-w', '-R', `write ${path.join(dir, 'hostname')} /etc/hostname`, p1]);
  const after = await readFile(p1);
  const { uuid } = (await stack.vm('web')).disks[0];
  for (let o = 0; o < after.length; o += MiB) {
    const chunk = after.subarray(o, o + MiB);
    if (!chunk.equals(before.subarray(o, o + MiB)))
      await stack.pool().control.writeBytes(uuid, P1_OFFSET + o, chunk);
  }
}

describe('xcpb files', () => {
  const ids: string[] = [];

  it('backs up a full then a delta after the guest changed a file', async () => {
    expect((await stack.runJob('files')).status).toBe('success');
    ids.push(await newestBackupId());
    await guestChangesHostname('web-2 renamed\n');
    expect((await stack.runJob('files')).status).toBe('success');
    ids.push(await newestBackupId());
    expect(ids[1]).not.toBe(ids[0]);
  }, 600_000);

  it('ls without a path shows disks, partitions and filesystems', async () => {
    const r = await runXcpb(['files', 'ls', ids[1], '--config', configFile, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { disks } = JSON.parse(r.stdout);
    expect(disks.map((d: { name: string; scheme: string }) => [d.name, d.scheme])).toEqual([
      ['root', 'mbr'],
      ['big', 'none'],
    ]);
    expect(disks[0].volumes.map((v: { id: string; fsType: string }) => [v.id, v.fsType])).toEqual([
      ['1', 'ext4'],
      ['2', 'fat32'],
    ]);
    const text = await runXcpb(['files', 'ls', ids[1], '--config', configFile]);
    expect(text.stdout).toMatch(/disk 0 {2}root/);
  });

  it('ls lists a folder page by page, with types, sizes, modes, owners and symlink targets', async () => {
    const args = ['files', 'ls', ids[1], '--config', configFile, '--disk', '0', '--partition', '1'];
    const home = await runXcpb([...args, '/home', '--json']);
    expect(home.code, home.stderr).toBe(0);
    const page = JSON.parse(home.stdout);
    expect(page.where).toBe('disk 0 (root), partition 1 (ext4)');
    expect(page.entries).toEqual([
      expect.objectContaining({ name: 'link', type: 'symlink', target: '../etc/hostname' }),
      expect.objectContaining({ name: 'ünïcødé', type: 'directory', uid: expect.any(Number) }),
    ]);
    const first = JSON.parse((await runXcpb([...args, '/', '--limit', '2', '--json'])).stdout);
    const rest = JSON.parse((await runXcpb([...args, '/', '--offset', '2', '--json'])).stdout);
    expect(first.entries).toHaveLength(2);
    expect([...first.entries, ...rest.entries].map((e: { name: string }) => e.name)).toEqual([
      'etc',
      'home',
      'lost+found',
      'var',
    ]);
    const fat = JSON.parse(
      (
        await runXcpb([
          'files',
          'ls',
          ids[1],
          '--config',
          configFile,
          '--disk',
          '0',
          '--partition',
          '2',
          '/',
          '--json',
        ])
      ).stdout,
    );
    expect(fat.entries.map((e: { name: string }) => e.name)).toEqual(['BOOT', 'Long File Name.txt']);
  });

  it('get restores files and folders from each point of the chain, as tar.gz, zip and folder', async () => {
    const base = ['--config', configFile, '--disk', '0', '--partition', '1'];
    for (const [i, hostname] of [
      [0, 'web-1\n'],
      [1, 'web-2 renamed\n'],
    ] as const) {
      const out = path.join(dir, `restore-${i}`);
      const r = await runXcpb([
        'files',
        'get',
        ids[i],
        '/etc',
        '/home',
        '/var',
        '-o',
        out,
        ...base,
        '--json',
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(await readFile(path.join(out, 'etc/hostname'), 'utf8')).toBe(hostname);
      expect(await sh256(path.join(out, 'home/ünïcødé/notes €.txt'))).toBe(
        sha256(v1['home/ünïcødé/notes €.txt']),
      );
      expect(await sh256(path.join(out, 'var/data.bin'))).toBe(sha256(v1['var/data.bin']));
      const sparse = await readFile(path.join(out, 'var/sparse.img'));
      expect(sparse.length).toBe(50 * MiB);
      expect(sha256(sparse)).toBe(sha256(Buffer.concat([Buffer.from('head'), Buffer.alloc(50 * MiB - 4)])));
      // the symlink is a symlink, not followed
      expect(await readlink(path.join(out, 'home/link'))).toBe('../etc/hostname');
    }
    const tgz = path.join(dir, 'etc.tar.gz');
    const t = await runXcpb(['files', 'get', ids[1], '/etc', '/home', '-o', tgz, ...base]);
    expect(t.code, t.stderr).toBe(0);
    const x = path.join(dir, 'untar');
    await mkdir(x);
    await sh('tar', ['-xzf', tgz, '-C', x]);
    expect(await readFile(path.join(x, 'etc/hostname'), 'utf8')).toBe('web-2 renamed\n');
    expect(await readlink(path.join(x, 'home/link'))).toBe('../etc/hostname');
    const names = (await sh('tar', ['-tzf', tgz])).stdout.trim().split('\n');
    expect(names).toContain('etc/hostname');
    for (const n of names) expect(n.startsWith('/') || n.split('/').includes('..')).toBe(false);
    const zip = path.join(dir, 'boot.zip');
    const z = await runXcpb([
      'files',
      'get',
      ids[1],
      '/BOOT',
      '/Long File Name.txt',
      '-o',
      zip,
      '--config',
      configFile,
      '--disk',
      '0',
      '--partition',
      '2',
    ]);
    expect(z.code, z.stderr).toBe(0);
    const uz = path.join(dir, 'unzip');
    await mkdir(uz);
    await sh('python3', [
      '-c',
      'import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])',
      zip,
      uz,
    ]);
    expect(await readFile(path.join(uz, 'BOOT/grub.cfg'), 'utf8')).toBe('menuentry\n');
    expect(await readFile(path.join(uz, 'Long File Name.txt'), 'utf8')).toBe('fat\n');
  }, 300_000);

  it('reads a file of more than 4 GiB from a sparse disk', async () => {
    const remote = openRemote({ id: 'nas', url: stack.config.remotes[0].url });
    const opened = await openBackupFiles(remote, parseBackupId(ids[1]), { disk: 1 });
    try {
      const st = await opened.fs.stat('/huge.bin');
      expect(st.size).toBe(BIG_FILE);
      const h = createHash('sha256');
      const truth = createHash('sha256');
      let n = 0;
      const zeros = Buffer.alloc(MiB);
      for await (const c of await opened.fs.openRead('/huge.bin')) {
        h.update(c as Buffer);
        n += (c as Buffer).length;
      }
      // the same bytes, built independently: tail at the start and at the end, zeros between
      truth.update(bigTail);
      let left = BIG_FILE - 2 * bigTail.length;
      while (left > 0) {
        const k = Math.min(left, MiB);
        truth.update(zeros.subarray(0, k));
        left -= k;
      }
      truth.update(bigTail);
      expect(n).toBe(BIG_FILE);
      expect(h.digest('hex')).toBe(truth.digest('hex'));
    } finally {
      await opened.close();
    }
  }, 300_000);

  it('the restoreFiles workflow writes an archive on a remote, or fails with the reason', async () => {
    const result = await stack.client.workflow.execute('restoreFiles', {
      taskQueue: MAIN_QUEUE,
      workflowId: `xcpb:restore-files:test-${Date.now()}`,
      args: [
        {
          backupId: ids[0],
          disk: 0,
          partition: '1',
          paths: ['/etc'],
          output: { remoteId: 'nas', path: 'restores/etc.tar.gz' },
        },
      ],
    });
    expect(result).toMatchObject({
      source: 'disk 0 (root), partition 1 (ext4)',
      format: 'tar.gz',
      files: 1,
      folders: 1,
    });
    const x = path.join(dir, 'wf');
    await mkdir(x);
    await sh('tar', ['-xzf', path.join(stack.remoteDir('nas'), 'restores/etc.tar.gz'), '-C', x]);
    expect(await readFile(path.join(x, 'etc/hostname'), 'utf8')).toBe('web-1\n');
    const failed = stack.client.workflow.execute('restoreFiles', {
      taskQueue: MAIN_QUEUE,
      workflowId: `xcpb:restore-files:test-missing-${Date.now()}`,
      args: [
        {
          backupId: ids[0],
          disk: 0,
          partition: '1',
          paths: ['/nope'],
          output: { folder: path.join(dir, 'wf-missing') },
        },
      ],
    });
    await expect(failed).rejects.toThrow(WorkflowFailedError);
    const err = await failed.catch((e) => e as WorkflowFailedError);
    // the activity's own words, innermost cause (non-retryable: it failed at once)
    let inner: { message?: string; cause?: unknown } | undefined = err;
    while ((inner?.cause as typeof inner)?.message) inner = inner!.cause as typeof inner;
    expect(inner?.message).toContain('disk 0 (root), partition 1 (ext4): /nope: no such file or folder');
  }, 120_000);

  it('errors name the disk and partition', async () => {
    const r = await runXcpb(['files', 'ls', ids[1], '--config', configFile, '--disk', '0', '/']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/disk 0 \(root\): several filesystems: choose one with --partition/);
    const missing = await runXcpb([
      'files',
      'ls',
      ids[1],
      '--config',
      configFile,
      '--disk',
      '0',
      '--partition',
      '1',
      '/nope',
    ]);
    expect(missing.stderr).toContain('disk 0 (root), partition 1 (ext4): /nope: no such file or folder');
    const two = await runXcpb(['files', 'ls', ids[1], '--config', configFile, '/']);
    expect(two.stderr).toMatch(/the VM has 2 disks: choose one with --disk \(0 = root, 1 = big\)/);
  });
});
