// Reports after a run, against a real SMTP server (aiosmtpd, its Maildir read back) and a local HTTP
// receiver: a failed run sends one email and one webhook POST; a successful run with
// `when: failure` sends nothing; a webhook that refuses leaves the run's outcome as its VMs made it,
// and one that answers 503 once is retried by Temporal.
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../core/run-report';
import { dailySchedule, pretty, random } from '../durability/checks';
import { type BackupStack, startBackupStack } from '../helpers/backup-stack';
import { type SmtpServer, startSmtpServer } from '../helpers/smtp-server';

let stack: BackupStack;
let smtp: SmtpServer;
let receiver: http.Server;
let dir: string;
const posts: { path: string; body: RunReport }[] = [];
/** status codes the receiver answers next, one per request (then 200) */
const nextAnswers: number[] = [];

const scenario = {
  pools: [
    {
      id: 'lab',
      credentials: [{ username: 'root', password: 'reports-pw' }],
      srs: [{ id: 'local', name: 'Local', size: '1GiB', default: true }],
      vms: ['good', 'bad'].map((name, i) => ({
        name,
        tags: ['prod'],
        power: 'Running' as const,
        disks: [{ name: `${name} root`, size: '4MiB', content: random(40 + i, 1) }],
      })),
    },
  ],
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-reports-'));
  smtp = await startSmtpServer(path.join(dir, 'maildir'));
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      posts.push({ path: req.url ?? '', body: JSON.parse(body) });
      res.writeHead(nextAnswers.shift() ?? 200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hook = (p: string) => `http://127.0.0.1:${(receiver.address() as AddressInfo).port}${p}`;
  const reports = (when: string, webhook: string) => ({ when, email: ['ops@example.org'], webhook });
  const job = (id: string, tag: string, r: unknown) => ({
    id,
    mode: 'delta',
    vms: { tags: [tag] },
    remotes: ['nas'],
    reports: r,
    schedules: dailySchedule(3),
  });
  stack = await startBackupStack({
    scenario,
    smtp: { host: smtp.host, port: smtp.port, from: 'xcp-backup <backups@example.org>' },
    jobs: [
      job('nightly', 'prod', reports('failure', hook('/nightly'))),
      { ...job('hooked', 'prod', { when: 'always', webhook: hook('/hooked') }) },
    ],
  });
});
afterAll(async () => {
  await stack?.close();
  await smtp?.stop();
  receiver?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('run reports', () => {
  it('a successful run with when: failure sends nothing', async () => {
    const report = await stack.runJob('nightly');
    expect(report.status, pretty(report)).toBe('success');
    expect(report.reports).toBeUndefined();
    expect(await smtp.messages()).toEqual([]);
    expect(posts).toEqual([]);
  });

  it('a failed run sends one email and one webhook POST, and says so in its report', async () => {
    // One VM's snapshot refused for good (not retried): that VM fails, so does the run.
    await stack.pool().control.injectFault({ method: 'VM.snapshot', code: 'VM_IS_TEMPLATE', times: 1 });
    const report = await stack.runJob('nightly');
    await stack.pool().control.clearFaults();
    expect(report.status, pretty(report)).toBe('failure');
    const failed = report.vms.filter((v) => v.status === 'failure');
    expect(failed, pretty(report)).toHaveLength(1);

    const messages = await smtp.messages();
    expect(messages).toHaveLength(1);
    const mail = messages[0].replace(/=\r?\n/g, ''); // quoted-printable soft line breaks
    expect(mail).toMatch(/^To: ops@example\.org\r?$/m);
    expect(mail).toMatch(/^From: "xcp-backup" <backups@example\.org>\r?$/m);
    expect(mail).toMatch(/^Subject: \[xcp-backup\] FAILURE nightly \(delta\): 1 of 2 VMs failed\r?$/m);
    expect(mail).toMatch(/Content-Type: text\/plain/);
    expect(mail).toMatch(/Content-Type: text\/html/);
    expect(mail).toContain(`failure  ${failed[0].vmName}`);
    expect(mail).toContain('VM_IS_TEMPLATE');

    expect(posts.map((p) => p.path)).toEqual(['/nightly']);
    expect(posts[0].body).toMatchObject({
      jobId: 'nightly',
      status: 'failure',
      workflowId: report.workflowId,
    });
    expect(posts[0].body.vms).toEqual(report.vms);

    expect(report.reports).toEqual([
      expect.objectContaining({ name: 'email', target: 'ops@example.org', status: 'success' }),
      expect.objectContaining({
        name: 'webhook',
        target: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        status: 'success',
      }),
    ]);
  });

  it('a webhook that refuses does not change the outcome; a 503 is retried', async () => {
    posts.length = 0;
    nextAnswers.push(404);
    const refused = await stack.runJob('hooked');
    expect(refused.status, pretty(refused)).toBe('success');
    expect(refused.reports).toEqual([
      expect.objectContaining({
        name: 'webhook',
        status: 'failure',
        error: expect.objectContaining({ code: 'HTTP_404' }),
      }),
    ]);
    expect(posts).toHaveLength(1); // a refusal is not retried
    const handle = stack.client.workflow.getHandle(refused.workflowId);
    expect((await handle.describe()).status.name).toBe('COMPLETED');

    posts.length = 0;
    nextAnswers.push(503);
    const retried = await stack.runJob('hooked');
    expect(retried.reports).toEqual([
      expect.objectContaining({ name: 'webhook', status: 'success', detail: 'HTTP 200' }),
    ]);
    expect(posts.map((p) => p.path)).toEqual(['/hooked', '/hooked']);
  });
});
