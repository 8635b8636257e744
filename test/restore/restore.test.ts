// Restores end to end: real Temporal, the simulator over HTTP (two pools), a local remote. Every
// restored disk is read back through the simulator's control API and compared with the source disk
// as it was at its snapshot (recorded while the snapshot existed).
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VmRecord } from '../../activities/xapi-records';
import type { RunReport } from '../../core/run-report';
import { MAIN_QUEUE } from '../../core/task-queues';
import type { RestoreProgress, RestoreVmInput, RestoreVmResult } from '../../workflows/restore-vm';
import { type BackupStack, readAll, startBackupStack } from '../helpers/backup-stack';
import { listJson, readBackup } from '../helpers/remote-files';

let stack: BackupStack;
const random = (seed: number, blocks: number) => ({ type: 'random' as const, seed, blocks });
const daily = (keep: number, extra: object = {}) => [
  { id: 'daily', cron: '0 3 * * *', retention: { remote: keep, snapshot: 1 }, ...extra },
];

const scenario = {
  pools: [
    {
      id: 'lab',
      credentials: [{ username: 'root', password: 'lab-secret-pw' }],
      srs: [
        { id: 'local', name: 'Local', size: '4GiB', default: true },
        { id: 'spare', name: 'Spare', size: '1GiB' },
      ],
      networks: [{ id: 'net0', name: 'Network 0' }],
      vms: [
        {
          name: 'web',
          tags: ['chain'],
          power: 'Running' as const,
          networks: ['net0'],
          disks: [
            { name: 'web root', size: '12MiB', content: random(1, 3) },
            { name: 'web data', size: '9MiB', content: random(2, 2) },
          ],
        },
        {
          name: 'app',
          tags: ['merged'],
          power: 'Running' as const,
          disks: [{ name: 'app root', size: '10MiB', content: random(3, 2) }],
        },
        {
          name: 'box',
          tags: ['full'],
          power: 'Halted' as const,
          networks: ['net0'],
          disks: [{ name: 'box root', size: '7MiB', content: random(4, 3) }],
        },
        {
          name: 'mem',
          tags: ['memory', 'checked'],
          power: 'Running' as const,
          memory: '8MiB',
          disks: [{ name: 'mem root', size: '6MiB', content: random(5, 2) }],
        },
        {
          name: 'silent',
          tags: ['checked'],
          power: 'Running' as const,
          other_config: { 'sim:guest-agent': 'none' },
          disks: [{ name: 'silent root', size: '4MiB', content: random(6, 1) }],
        },
      ],
    },
    {
      id: 'dr',
      credentials: [{ username: 'root', password: 'lab-secret-pw' }],
      srs: [{ id: 'dr-local', name: 'DR storage', size: '2GiB', default: true }],
      networks: [{ id: 'drnet', name: 'DR network' }],
      vms: [],
    },
  ],
};

beforeAll(async () => {
  stack = await startBackupStack({
    scenario,
    jobs: [
      { id: 'chain', mode: 'delta', vms: { tags: ['chain'] }, remotes: ['nas'], schedules: daily(10) },
      { id: 'merged', mode: 'delta', vms: { tags: ['merged'] }, remotes: ['nas'], schedules: daily(3) },
      ...(['none', 'gzip', 'zstd'] as const).map((compression) => ({
        id: `full-${compression}`,
        mode: 'full',
        compression,
        vms: { tags: ['full'] },
        remotes: ['nas'],
        schedules: daily(5),
      })),
      {
        id: 'memory',
        mode: 'delta',
        snapshotMode: 'memory',
        vms: { tags: ['memory'] },
        remotes: ['nas'],
        schedules: daily(5),
      },
      {
        id: 'checked',
        mode: 'delta',
        vms: { tags: ['checked'] },
        remotes: ['nas'],
        schedules: daily(5, { healthCheck: { sr: 'Spare', timeout: '20s' } }),
      },
      {
        id: 'checked-tags',
        mode: 'delta',
        vms: { tags: ['merged'] },
        remotes: ['nas'],
        schedules: daily(5, { healthCheck: { sr: 'Spare', tags: ['critical'] } }),
      },
    ],
  });
}, 120_000);
afterAll(() => stack?.close());

let counter = 0;
function restore(
  input: RestoreVmInput,
  workflowId = `xcpb:restore:test-${++counter}-${Date.now()}`,
): Promise<RestoreVmResult> {
  return stack.client.workflow.execute('restoreVm', {
    taskQueue: MAIN_QUEUE,
    workflowId,
    args: [input],
  });
}

const bytesOf = async (vdiUuid: string, poolId?: string) =>
  readAll(await stack.pool(poolId).control.readVdi(vdiUuid));

/** `<ts>/<metadata vdi key>` → bytes of the snapshot VDI when the backup was taken. */
const truths = new Map<string, Buffer>();

async function runAndRecord(jobId: string, vmName: string): Promise<string> {
  const report = (await stack.runJob(jobId)) as RunReport;
  expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
  const vm = await stack.vm(vmName);
  const ts = (await listJson(stack.remoteDir('nas'), vm.uuid)).at(-1)!.replace('.json', '');
  const backup = await readBackup(stack.remoteDir('nas'), vm.uuid, ts);
  for (const [key, vdi] of Object.entries(backup.metadata.vdis as Record<string, { uuid: string }>)) {
    truths.set(`${ts}/${key}`, await bytesOf(vdi.uuid));
  }
  return ts;
}

async function expectRestoredEqualsTruth(result: RestoreVmResult, ts: string, poolId?: string) {
  expect(result.vdis.length).toBeGreaterThan(0);
  for (const v of result.vdis) {
    const truth = truths.get(`${ts}/${v.key}`);
    expect(truth, `bytes recorded for ${ts}/${v.key}`).toBeDefined();
    const restored = await bytesOf(v.uuid, poolId);
    expect(restored.length).toBe(truth!.length);
    expect(restored.equals(truth!), `${ts} ${v.nameLabel}`).toBe(true);
  }
}

async function vmRecord(uuid: string, poolId?: string): Promise<VmRecord> {
  const xapi = await stack.xapi(poolId);
  try {
    return await xapi.getRecord<VmRecord>('VM', await xapi.call<string>('VM.get_by_uuid', uuid));
  } finally {
    await xapi.logout();
  }
}

/** Every VM and VDI a restore marked, on a pool. */
async function restoreLeftovers(poolId?: string): Promise<string[]> {
  const xapi = await stack.xapi(poolId);
  try {
    const out: string[] = [];
    for (const cls of ['VM', 'VDI']) {
      for (const r of Object.values(
        await xapi.getAllRecords<{ uuid: string; other_config: Record<string, string> }>(cls),
      )) {
        if (r.other_config?.['xcpb:restore']) out.push(`${cls} ${r.uuid} ${r.other_config['xcpb:restore']}`);
      }
    }
    return out;
  } finally {
    await xapi.logout();
  }
}

const chainPoints: string[] = [];

describe('delta restore', () => {
  it('restores each point of a chain of one full and five deltas, byte for byte, two disks', async () => {
    const web = await stack.vm('web');
    for (let i = 0; i < 6; i++) {
      if (i > 0) {
        await stack.pool().control.writeRandomBlocks(web.disks[i % 2].uuid, { count: 1, seed: `chain ${i}` });
        await stack.pool().control.writeBytes(web.disks[0].uuid, 512 * (i * 7 + 1), Buffer.alloc(700, i));
      }
      chainPoints.push(await runAndRecord('chain', 'web'));
    }
    const newest = await readBackup(stack.remoteDir('nas'), web.uuid, chainPoints[5]);
    expect(newest.disks.every((d) => d.differencing)).toBe(true);
    for (const ts of chainPoints) {
      const result = await restore({ backupId: `nas:${web.uuid}/${ts}`, poolId: 'lab', sr: 'Local' });
      expect(result.mode).toBe('delta');
      expect(result.vdis).toHaveLength(2);
      await expectRestoredEqualsTruth(result, ts);
      const vm = await vmRecord(result.vmUuid);
      expect(vm.name_label).toMatch(/^web \(restored \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$/);
      expect(vm.other_config['xcpb:created-by']).toBe('restore');
      expect(vm.power_state).toBe('Halted');
      expect(vm.VBDs).toHaveLength(2);
      expect(vm.VIFs).toHaveLength(1);
    }
  });

  it('restores to a second pool that never saw the VM, mapping the network, and starts it', async () => {
    const web = await stack.vm('web');
    const ts = chainPoints[3];
    const result = await restore({
      backupId: `nas:${web.uuid}/${ts}`,
      poolId: 'dr',
      sr: 'DR storage',
      start: true,
      newMacAddresses: true,
    });
    await expectRestoredEqualsTruth(result, ts, 'dr');
    expect(result.powerState).toBe('Running');
    expect(result.networks).toEqual([expect.stringContaining('first network (DR network)')]);
    const vm = await vmRecord(result.vmUuid, 'dr');
    expect(vm.power_state).toBe('Running');
  });

  it('after retention merged the oldest deltas, every kept point still restores exactly', async () => {
    const app = await stack.vm('app');
    const points: string[] = [];
    for (let i = 0; i < 5; i++) {
      if (i > 0)
        await stack.pool().control.writeRandomBlocks(app.disks[0].uuid, { count: 1, seed: `merge ${i}` });
      points.push(await runAndRecord('merged', 'app'));
    }
    const kept = (await listJson(stack.remoteDir('nas'), app.uuid)).map((j) => j.replace('.json', ''));
    expect(kept).toEqual(points.slice(2));
    const oldest = await readBackup(stack.remoteDir('nas'), app.uuid, kept[0]);
    expect(oldest.disks.every((d) => !d.differencing)).toBe(true); // merged into a full
    for (const ts of kept) {
      await expectRestoredEqualsTruth(
        await restore({ backupId: `nas:${app.uuid}/${ts}`, poolId: 'lab', sr: 'Local' }),
        ts,
      );
    }
  });

  it('a memory backup restores Suspended, with its memory image', async () => {
    const ts = await runAndRecord('memory', 'mem');
    const mem = await stack.vm('mem');
    const backup = await readBackup(stack.remoteDir('nas'), mem.uuid, ts);
    expect(backup.metadata.vmSnapshot.power_state).toBe('Suspended');
    const result = await restore({ backupId: `nas:${mem.uuid}/${ts}`, poolId: 'lab', sr: 'Local' });
    expect(result.vdis.filter((v) => v.suspend)).toHaveLength(1);
    await expectRestoredEqualsTruth(result, ts);
    const vm = await vmRecord(result.vmUuid);
    expect(vm.power_state).toBe('Suspended');
    const suspend = result.vdis.find((v) => v.suspend)!;
    const xapi = await stack.xapi();
    try {
      expect(await xapi.call('VDI.get_uuid', vm.suspend_VDI)).toBe(suspend.uuid);
    } finally {
      await xapi.logout();
    }
  });
});

describe('full restore', () => {
  it.each(['none', 'gzip', 'zstd'])(
    'an XVA backup (%s) restores the disk byte for byte',
    async (compression) => {
      const box = await stack.vm('box');
      const source = await bytesOf(box.disks[0].uuid);
      const report = await stack.runJob(`full-${compression}`);
      expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
      const ts = (await listJson(stack.remoteDir('nas'), box.uuid)).at(-1)!.replace('.json', '');
      const workflowId = `xcpb:restore:test-xva-${compression}-${Date.now()}`;
      const result = await restore(
        { backupId: `nas:${box.uuid}/${ts}`, poolId: 'lab', sr: 'Spare' },
        workflowId,
      );
      expect(result.mode).toBe('full');
      // `xcpb restore`'s bar: its total is the XVA file's size, the bytes its import heartbeats.
      const { metadata } = await readBackup(stack.remoteDir('nas'), box.uuid, ts);
      const xva = await stat(path.join(stack.remoteDir('nas'), 'xo-vm-backups', box.uuid, metadata.xva));
      const progress = await stack.client.workflow.getHandle(workflowId).query<RestoreProgress>('progress');
      expect(progress.plan?.restoreBytes).toBe(xva.size);
      // Started with no static summary (as a raw start): its current details say what it did.
      const ui = await stack.client.workflow
        .getHandle(workflowId)
        .query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(ui.currentDetails).toBe(`restore nas:${box.uuid}/${ts} → pool lab, SR Spare`);
      expect(result.vdis).toHaveLength(1);
      expect((await bytesOf(result.vdis[0].uuid)).equals(source)).toBe(true);
      const vm = await vmRecord(result.vmUuid);
      expect(vm.name_label).toMatch(/^box \(restored /);
      expect(vm.other_config['xcpb:created-by']).toBe('restore');
    },
  );
});

describe('faults', () => {
  it('the target SR filling up mid-restore fails with SR_FULL and leaves nothing on the pool', async () => {
    const web = await stack.vm('web');
    const control = stack.pool().control;
    const before = await restoreLeftovers();
    await control.delay('VDI.create', 1_500);
    const xapi = await stack.xapi();
    const spareUuid = await xapi.call<string>(
      'SR.get_uuid',
      (await xapi.call<string[]>('SR.get_by_name_label', 'Spare'))[0],
    );
    const id = `xcpb:restore:sr-full-${Date.now()}`;
    const running = restore(
      { backupId: `nas:${web.uuid}/${chainPoints[5]}`, poolId: 'lab', sr: 'Spare' },
      id,
    );
    running.catch(() => {});
    // Wait for the first restored VDI, then fill the SR: the second VDI or the data no longer fit.
    for (;;) {
      const vdis = Object.values(await xapi.getAllRecords<{ other_config: Record<string, string> }>('VDI'));
      if (vdis.some((v) => v.other_config['xcpb:restore'] === id)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await control.fillSr(spareUuid, true);
    await xapi.logout();
    try {
      const err = await running.then(
        () => undefined,
        (e) => e,
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(JSON.stringify(causes(err))).toContain('SR_FULL');
      expect(await restoreLeftovers()).toEqual(before);
    } finally {
      await control.clearFaults();
    }
  });

  it('a corrupted VHD in the chain fails before any VM is created, naming the file', async () => {
    const web = await stack.vm('web');
    const backup = await readBackup(stack.remoteDir('nas'), web.uuid, chainPoints[2]);
    const vhd = path.join(stack.remoteDir('nas'), 'xo-vm-backups', web.uuid, backup.disks[0].vhd);
    const original = await readFile(vhd);
    const corrupted = Buffer.from(original);
    corrupted[original.length - 512 + 70] ^= 0xff; // the footer's checksum no longer matches
    corrupted[70] ^= 0xff;
    await writeFile(vhd, corrupted);
    const vmsBefore = Object.keys(await allVms());
    try {
      const err = await restore({
        backupId: `nas:${web.uuid}/${chainPoints[4]}`,
        poolId: 'lab',
        sr: 'Local',
      }).then(
        () => undefined,
        (e) => e,
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const message = causes(err).join(' | ');
      expect(message).toContain('VHD_INVALID');
      expect(message).toContain(`${chainPoints[2]}.vhd`);
      expect(Object.keys(await allVms())).toEqual(vmsBefore);
    } finally {
      await writeFile(vhd, original);
    }
  });

  it('an unknown backup id fails clearly', async () => {
    const err = await restore({
      backupId: 'nas:no-such-vm/20200101T000000Z',
      poolId: 'lab',
      sr: 'Local',
    }).then(
      () => undefined,
      (e) => e,
    );
    expect(causes(err).join(' ')).toMatch(/BACKUP_NOT_FOUND.*no metadata/s);
  });
});

describe('health check', () => {
  it('passes on a VM whose guest agent reports, fails clearly on one that never does; both check VMs are removed', async () => {
    await stack.pool().control.settings({ guestAgentDelayMs: 1_500 });
    const before = await restoreLeftovers();
    const report = await stack.runJob('checked');
    const mem = report.vms.find((v) => v.vmName === 'mem')!;
    const silent = report.vms.find((v) => v.vmName === 'silent')!;
    const memCheck = mem.steps.find((s) => s.name === 'healthCheck');
    expect(memCheck, JSON.stringify(mem, null, 1)).toMatchObject({ status: 'success', target: 'Spare' });
    expect(memCheck!.detail).toMatch(/guest agent reported/);
    expect(mem.status).toBe('success');
    const silentCheck = silent.steps.find((s) => s.name === 'healthCheck');
    expect(silentCheck).toMatchObject({ status: 'failure', error: { code: 'HEALTH_CHECK_TIMEOUT' } });
    expect(silentCheck!.error!.message).toMatch(/guest agent did not report/);
    expect(silent.status).toBe('failure');
    expect(await restoreLeftovers()).toEqual(before);
    const names = Object.values(await allVms()).map((v) => v.name_label);
    expect(names.filter((n) => n.includes('health check'))).toEqual([]);
    await stack.pool().control.settings({ guestAgentDelayMs: 0 });
  });
});

describe('health check tags', () => {
  it('a VM without one of the health check tags is not checked: the step says skipped', async () => {
    const report = await stack.runJob('checked-tags');
    expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
    const step = report.vms[0].steps.find((s) => s.name === 'healthCheck');
    expect(step).toMatchObject({ status: 'skipped', detail: 'VM has none of the tags critical' });
  });
});

async function allVms(): Promise<Record<string, VmRecord>> {
  const xapi = await stack.xapi();
  try {
    return await xapi.getAllRecords<VmRecord>('VM');
  } finally {
    await xapi.logout();
  }
}

function causes(err: unknown): string[] {
  const out: string[] = [];
  for (
    let e = err as { message?: string; cause?: unknown; type?: string } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    out.push(`${e.type ?? ''} ${e.message ?? ''}`);
  }
  return out;
}
