// Acceptance: backup, retention (with merges) and restore through the same code path on every remote
// type at once: a local folder, an encrypted local folder, S3 (a real versitygw on loopback) and
// encrypted S3. One delta job writes to all four in each run (one export, fanned out); after the
// runs, each remote keeps the same points, its oldest kept point merged into a full, and every kept
// point restores byte for byte from every remote.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../core/run-report';
import { MAIN_QUEUE } from '../../core/task-queues';
import { BackupRepository } from '../../remotes/backup-repository';
import { openRemote } from '../../remotes/open-remote';
import type { RestoreVmResult } from '../../workflows/restore-vm';
import { type BackupStack, readAll, startBackupStack } from '../helpers/backup-stack';
import { type S3TestServer, startS3Server } from '../helpers/s3-server';

const KEY_ENV = 'XCPB_TEST_EVERY_REMOTE_KEY';
const S3_SECRET_ENV = 'XCPB_TEST_EVERY_REMOTE_S3_SECRET';
const REMOTES = ['nas', 'vault', 's3', 's3-vault'];
const KEEP = 3;
const RUNS = 5;

let stack: BackupStack;
let s3: S3TestServer;
let vaultDir: string;

beforeAll(async () => {
  s3 = await startS3Server();
  vaultDir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-vault-'));
  process.env[KEY_ENV] = 'an-encryption-key-of-32-bytes!!!';
  process.env[S3_SECRET_ENV] = s3.secretAccessKey;
  const s3Remote = async (id: string, encrypted: boolean) => ({
    id,
    url: `s3://${s3.host}/${await s3.createBucket()}/backups`,
    protocol: 'http',
    accessKeyId: s3.accessKeyId,
    secretAccessKey: { env: S3_SECRET_ENV },
    ...(encrypted ? { encryptionKey: { env: KEY_ENV } } : {}),
  });
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'lab-secret-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '2GiB', default: true }],
          vms: [
            {
              name: 'web',
              tags: ['everywhere'],
              power: 'Running' as const,
              disks: [
                { name: 'root', size: '10MiB', content: { type: 'random' as const, seed: 1, blocks: 3 } },
                { name: 'data', size: '5MiB', content: { type: 'random' as const, seed: 2, blocks: 2 } },
              ],
            },
          ],
        },
      ],
    },
    remotes: ['nas'],
    remoteConfigs: [
      { id: 'vault', url: `file://${vaultDir}`, encryptionKey: { env: KEY_ENV } },
      await s3Remote('s3', false),
      await s3Remote('s3-vault', true),
    ],
    jobs: [
      {
        id: 'everywhere',
        mode: 'delta',
        vms: { tags: ['everywhere'] },
        remotes: REMOTES,
        schedules: [{ id: 'daily', cron: '0 3 * * *', retention: { remote: KEEP, snapshot: 1 } }],
      },
    ],
  });
}, 180_000);
afterAll(async () => {
  await stack?.close();
  await s3?.close();
  if (vaultDir) await rm(vaultDir, { recursive: true, force: true });
});

const truths = new Map<string, Buffer[]>();

describe('every remote type, one code path', () => {
  it('backs up, keeps the last points with merges, and restores each kept point exactly from every remote', async () => {
    const web = await stack.vm('web');
    const points: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      if (run > 0)
        await stack.pool().control.writeRandomBlocks(web.disks[0].uuid, { count: 1, seed: `run ${run}` });
      if (run === 3)
        await stack.pool().control.writeRandomBlocks(web.disks[1].uuid, { count: 1, seed: 'data' });
      const report = (await stack.runJob('everywhere')) as RunReport;
      expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
      const disks = await Promise.all(
        web.disks.map(async (d) => readAll(await stack.pool().control.readVdi(d.uuid))),
      );
      const ts = (
        await new BackupRepository(openRemote(stack.config.remotes[0]!)).listVmBackups(web.uuid)
      ).at(-1)!.basename;
      truths.set(ts, disks);
      points.push(ts);
    }

    for (const remoteId of REMOTES) {
      const config = stack.config.remotes.find((r) => r.id === remoteId)!;
      const repository = BackupRepository.readOnly(openRemote(config));
      const entries = await repository.listVmBackups(web.uuid);
      expect(
        entries.map((e) => [e.basename, e.status]),
        remoteId,
      ).toEqual(points.slice(-KEEP).map((p) => [p, 'ok']));
      const oldest = entries[0]!.metadata!;
      // A local folder keeps VHD files merged in place; the others, XO's VHD directories (alias + data).
      for (const e of entries) {
        const refs = e.metadata?.mode === 'delta' ? Object.values(e.metadata.vhds) : [];
        expect(refs.length, remoteId).toBe(2);
        for (const ref of refs)
          expect(ref.endsWith('.alias.vhd'), `${remoteId} ${ref}`).toBe(remoteId !== 'nas');
      }
      expect(
        oldest.mode === 'delta' && Object.values(oldest.isVhdDifferencing ?? {}).every((d) => !d),
        remoteId,
      ).toBe(true);
      for (const ts of points.slice(-KEEP)) {
        const result: RestoreVmResult = await stack.client.workflow.execute('restoreVm', {
          taskQueue: MAIN_QUEUE,
          workflowId: `xcpb:restore:every-${remoteId}-${ts}-${Date.now()}`,
          args: [{ backupId: `${remoteId}:${web.uuid}/${ts}`, poolId: 'lab', sr: 'Local' }],
        });
        const restored = await Promise.all(
          result.vdis.map(async (v) => ({
            name: v.nameLabel,
            bytes: await readAll(await stack.pool().control.readVdi(v.uuid)),
          })),
        );
        const truth = truths.get(ts)!;
        for (const [i, disk] of web.disks.entries()) {
          const got = restored.find((r) => r.name === disk.name || r.name.startsWith(disk.name));
          expect(got, `${remoteId} ${ts} ${disk.name}`).toBeDefined();
          expect(got!.bytes.equals(truth[i]!), `${remoteId} ${ts} ${disk.name}`).toBe(true);
        }
      }
    }
  });
});
