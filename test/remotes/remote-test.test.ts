// `xcpb remotes test`: every step on a local folder and on a real S3 server, a failing remote names
// its failing step, and nothing is left behind either way.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withFaults } from '../../remotes/faulty';
import { createLocalRemote } from '../../remotes/local';
import { testRemote } from '../../remotes/remote-test';
import { runXcpb } from '../helpers/cli';
import { type S3TestServer, startS3Server } from '../helpers/s3-server';

let root: string;
let s3: S3TestServer;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'xcpb-remote-test-'));
  s3 = await startS3Server();
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await s3?.close();
});

describe('remote test', () => {
  it('writes, reads back whole and by range, renames, deletes, with MiB/s; leaves nothing', async () => {
    const result = await testRemote(createLocalRemote({ id: 'nas', root }), 4);
    expect(result.ok).toBe(true);
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ['write', true],
      ['read', true],
      ['ranged read', true],
      ['rename', true],
      ['delete', true],
    ]);
    for (const s of result.steps.slice(0, 3)) expect(s.throughput).toBeGreaterThan(0);
    expect(await readdir(root)).toEqual([]);
  });

  it('passes with the smallest size too (1 MiB: the ranged read takes half the file)', async () => {
    const result = await testRemote(createLocalRemote({ id: 'nas', root }), 1);
    expect(result.steps.filter((s) => !s.ok)).toEqual([]);
    expect(result.steps).toHaveLength(5);
  });

  it('a full remote fails at the write step with its reason, and leaves nothing', async () => {
    const full = withFaults(createLocalRemote({ id: 'nas', root }), { writeBudgetBytes: 1024 * 1024 });
    const result = await testRemote(full, 4);
    expect(result.ok).toBe(false);
    expect(result.steps[0]).toMatchObject({ step: 'write', ok: false });
    expect(result.steps[0]!.error).toMatch(/no space left/);
    expect(await readdir(root)).toEqual([]);
  });

  it('a remote whose path is a file says so, at its write probe and in `xcpb remotes test`', async () => {
    const file = path.join(root, '..', `${path.basename(root)}-a-file`);
    const config = `${file}.json`;
    await writeFile(file, 'not a folder');
    await writeFile(config, JSON.stringify({ remotes: [{ id: 'nas', url: `file://${file}` }] }));
    try {
      const remote = createLocalRemote({ id: 'nas', root: file });
      await expect(remote.checkWritable()).rejects.toMatchObject({
        code: 'UNAVAILABLE',
        message: expect.stringContaining(`remote root ${file} is a file, not a folder`),
      });
      const out = await runXcpb(['remotes', 'test', 'nas', '--config', config]);
      expect(out.code).toBe(1);
      expect(out.stdout).toMatch(new RegExp(`write +FAILED .*remote root ${file} is a file, not a folder`));
    } finally {
      await rm(file, { force: true });
      await rm(config, { force: true });
    }
  });

  it('xcpb remotes test <id> --config runs against a real S3 server and prints each step', async () => {
    const bucket = await s3.createBucket();
    const config = path.join(root, '..', `${path.basename(root)}.json`);
    await writeFile(
      config,
      JSON.stringify({
        remotes: [
          {
            id: 'offsite',
            url: `s3://${s3.host}/${bucket}/xcpb`,
            protocol: 'http',
            accessKeyId: s3.accessKeyId,
            secretAccessKey: { env: 'XCPB_TEST_S3_SECRET' },
          },
        ],
      }),
    );
    try {
      const out = await runXcpb(['remotes', 'test', 'offsite', '--config', config, '--size', '8', '--json'], {
        XCPB_TEST_S3_SECRET: s3.secretAccessKey,
      });
      expect(out.code, out.stderr).toBe(0);
      const result = JSON.parse(out.stdout);
      expect(result).toMatchObject({ remoteId: 'offsite', ok: true, bytes: 8 * 1024 * 1024 });
      expect((await readdir(path.join(s3.root, bucket))).filter((n) => n !== '.sgwtmp')).toEqual([]);
      const wrong = await runXcpb(['remotes', 'test', 'offsite', '--config', config], {
        XCPB_TEST_S3_SECRET: 'wrong',
      });
      expect(wrong.code).toBe(1);
      expect(wrong.stdout).toMatch(/write +FAILED/);
    } finally {
      await rm(config, { force: true });
    }
  });
});
