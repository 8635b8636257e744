// Backup modes and snapshot modes end to end, on the simulator and a real Temporal server.
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport, VmReport } from '../../core/run-report';
import { readXva } from '../../formats/xva';
import { type BackupStack, chainToRaw, readAll, startBackupStack } from '../helpers/backup-stack';
import { chainUpTo, listJson, readBackup } from '../helpers/remote-files';

let stack: BackupStack;
const random = (seed: number, blocks: number) => ({ type: 'random' as const, seed, blocks });
const disk = (name: string, seed: number) => ({ name, size: '10MiB', content: random(seed, 3) });
const keep = (remote: number, snapshot = 0) => [
  { id: 's', cron: '0 1 * * *', retention: { remote, snapshot } },
];

const scenario = {
  pools: [
    {
      id: 'lab',
      credentials: [{ username: 'root', password: 'modes-pw' }],
      srs: [{ id: 'local', name: 'Local', size: '4GiB', default: true }],
      vms: [
        { name: 'full-a', tags: ['full'], power: 'Halted' as const, disks: [disk('a0', 1), disk('a1', 2)] },
        { name: 'full-b', tags: ['full'], power: 'Running' as const, disks: [disk('b0', 3)] },
        { name: 'roll', tags: ['roll'], power: 'Running' as const, disks: [disk('r0', 4)] },
        { name: 'mem', tags: ['mem'], power: 'Running' as const, memory: '8MiB', disks: [disk('m0', 5)] },
        {
          name: 'mem-by-tag',
          tags: ['plain', 'xo-memory-backup'],
          power: 'Running' as const,
          memory: '8MiB',
          disks: [disk('t0', 6)],
        },
        {
          name: 'off-by-tag',
          tags: ['plain', 'xo-offline-backup'],
          power: 'Running' as const,
          disks: [disk('o0', 7)],
        },
        { name: 'quiet', tags: ['quiet'], power: 'Running' as const, disks: [disk('q0', 8)] },
        { name: 'twice', tags: ['twice'], power: 'Halted' as const, disks: [disk('w0', 9)] },
        { name: 'long-chain', tags: ['chain'], power: 'Halted' as const, disks: [disk('c0', 10)] },
      ],
    },
  ],
};

beforeAll(async () => {
  stack = await startBackupStack({
    scenario,
    remotes: ['nas', 'usb'],
    jobs: [
      ...(['none', 'gzip', 'zstd'] as const).map((compression) => ({
        id: `full-${compression}`,
        mode: 'full',
        compression,
        vms: { tags: ['full'] },
        remotes: ['nas'],
        schedules: keep(2),
      })),
      { id: 'rolling', mode: 'snapshot', vms: { tags: ['roll'] }, schedules: keep(0, 2) },
      {
        id: 'memory',
        mode: 'delta',
        snapshotMode: 'memory',
        vms: { tags: ['mem'] },
        remotes: ['nas'],
        schedules: keep(3),
      },
      { id: 'tags', mode: 'delta', vms: { tags: ['plain'] }, remotes: ['nas'], schedules: keep(3) },
      {
        id: 'quiesce',
        mode: 'delta',
        snapshotMode: 'quiesce',
        vms: { tags: ['quiet'] },
        remotes: ['nas'],
        schedules: keep(3),
      },
      {
        id: 'two-remotes',
        mode: 'delta',
        vms: { tags: ['twice'] },
        remotes: ['nas', 'usb'],
        schedules: keep(3),
      },
      {
        id: 'chain',
        mode: 'delta',
        vms: { tags: ['chain'] },
        remotes: ['nas'],
        chainWait: { interval: '1s', maximum: '3s' },
        schedules: keep(3),
      },
    ],
  });
});
afterAll(() => stack?.close());

const vmReport = (report: RunReport, name: string): VmReport => report.vms.find((v) => v.vmName === name)!;
const detailOf = (vm: VmReport, step: string) => vm.steps.find((s) => s.name === step)?.detail ?? '';

async function jobSnapshots(jobId: string) {
  return (await stack.pool().control.snapshots()).filter((s) => s.other_config['xo:backup:job'] === jobId);
}

/** Reads an XVA from the remote and returns each disk's bytes by VDI uuid. */
async function xvaDisks(file: string): Promise<{ compression: string; disks: Map<string, Buffer> }> {
  const disks = new Map<string, Buffer>();
  const byRef = new Map<string, Buffer>();
  let compression = '';
  for await (const item of readXva(createReadStream(file), { file })) {
    if (item.type === 'header') {
      compression = item.compression;
      for (const vdi of item.records.vdis) {
        const buf = Buffer.alloc(Number(vdi.snapshot.virtual_size));
        byRef.set(vdi.id, buf);
        disks.set(String(vdi.snapshot.uuid), buf);
      }
    } else {
      item.data.copy(byRef.get(item.ref)!, item.offset);
    }
  }
  return { compression, disks };
}

describe('full backups (XVA)', () => {
  it.each(['none', 'gzip', 'zstd'])(
    'compression %s: the XVA holds the snapshot disks byte for byte; no snapshot kept',
    async (compression) => {
      const report = await stack.runJob(`full-${compression}`);
      expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
      for (const name of ['full-a', 'full-b']) {
        const vm = await stack.vm(name);
        const dir = path.join(stack.remoteDir('nas'), 'xo-vm-backups', vm.uuid);
        const json = (await listJson(stack.remoteDir('nas'), vm.uuid)).at(-1)!;
        const meta = (await readBackup(stack.remoteDir('nas'), vm.uuid, json.replace('.json', ''))).metadata;
        expect(meta).toMatchObject({
          mode: 'full',
          jobId: `full-${compression}`,
          xva: `./${json.replace('.json', '.xva')}`,
        });
        const xva = await xvaDisks(path.join(dir, meta.xva));
        expect(xva.compression).toBe(compression === 'none' ? 'none' : compression);
        // The snapshot is gone (full mode keeps none), so compare with the live disks: nothing wrote to them.
        expect(xva.disks.size).toBe(vm.disks.length);
        const liveBytes = await Promise.all(
          vm.disks.map(async (d) => readAll(await stack.pool().control.readVdi(d.uuid))),
        );
        expect([...xva.disks.values()].map((b) => b.toString('base64')).sort()).toEqual(
          liveBytes.map((b) => b.toString('base64')).sort(),
        );
      }
      expect(await jobSnapshots(`full-${compression}`)).toEqual([]);
    },
  );
});

describe('rolling snapshots', () => {
  it('keeps the newest 2 snapshots of the schedule, writes nothing to remotes', async () => {
    const uuids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const report = await stack.runJob('rolling');
      expect(report.status).toBe('success');
      uuids.push(/[0-9a-f-]{36}/.exec(detailOf(vmReport(report, 'roll'), 'snapshot'))![0]);
    }
    const left = (await jobSnapshots('rolling')).map((s) => s.uuid).sort();
    expect(left).toEqual(uuids.slice(1).sort());
    const vm = await stack.vm('roll');
    expect(await listJson(stack.remoteDir('nas'), vm.uuid)).toEqual([]);
  });
});

describe('snapshot modes', () => {
  it('memory: a checkpoint whose suspend VDI is backed up with the disks', async () => {
    const report = await stack.runJob('memory');
    expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
    expect(detailOf(vmReport(report, 'mem'), 'snapshot')).toMatch(/^checkpoint /);
    const vm = await stack.vm('mem');
    const backup = await readBackup(
      stack.remoteDir('nas'),
      vm.uuid,
      (await listJson(stack.remoteDir('nas'), vm.uuid))[0].replace('.json', ''),
    );
    expect(backup.disks).toHaveLength(2); // the disk and the memory
    const snap = (await jobSnapshots('memory'))[0];
    for (const d of backup.disks) {
      const chain = await chainUpTo(
        stack.remoteDir('nas'),
        vm.uuid,
        'memory',
        d.vhd.split('/')[2],
        backup.ts,
      );
      const truth = await readAll(await stack.pool().control.readVdi(d.snapshotVdi));
      expect((await chainToRaw(chain)).equals(truth)).toBe(true);
    }
    expect(snap).toBeDefined();
  });

  it('VM tags override the job: xo-memory-backup checkpoints, xo-offline-backup stops and restarts the VM', async () => {
    const report = await stack.runJob('tags');
    expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
    const mem = vmReport(report, 'mem-by-tag');
    expect(detailOf(mem, 'preflight')).toContain('snapshot memory (VM tag xo-memory-backup)');
    expect(detailOf(mem, 'snapshot')).toMatch(/^checkpoint /);
    const off = vmReport(report, 'off-by-tag');
    expect(detailOf(off, 'preflight')).toContain('snapshot offline (VM tag xo-offline-backup)');
    expect(off.steps.map((s) => s.name)).toEqual(expect.arrayContaining(['shutdown', 'snapshot', 'start']));
    const names = off.steps.map((s) => s.name);
    expect(names.indexOf('shutdown')).toBeLessThan(names.indexOf('snapshot'));
    expect(names.indexOf('start')).toBeGreaterThan(names.indexOf('snapshot'));
    const xapi = await stack.xapi();
    const ref = await xapi.call<string>('VM.get_by_uuid', off.vmUuid);
    expect(await xapi.call('VM.get_power_state', ref)).toBe('Running');
    await xapi.logout();
  });

  it('offline: the VM is started again even when the snapshot fails', async () => {
    await stack.pool().control.injectFault({ method: 'VM.snapshot', code: 'VM_IS_TEMPLATE', times: 10 });
    try {
      const report = await stack.runJob('tags');
      const off = vmReport(report, 'off-by-tag');
      expect(off.status).toBe('failure');
      expect(off.steps.find((s) => s.name === 'snapshot')?.error?.code).toBe('VM_IS_TEMPLATE');
      expect(off.steps.find((s) => s.name === 'start')?.status).toBe('success');
    } finally {
      await stack.pool().control.clearFaults();
    }
    const xapi = await stack.xapi();
    expect(
      await xapi.call(
        'VM.get_power_state',
        await xapi.call<string>('VM.get_by_uuid', (await stack.vm('off-by-tag')).uuid),
      ),
    ).toBe('Running');
    await xapi.logout();
  });

  it('quiesce: falls back to a normal snapshot when XAPI answers MESSAGE_REMOVED, and says so', async () => {
    const report = await stack.runJob('quiesce');
    expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
    expect(detailOf(vmReport(report, 'quiet'), 'snapshot')).toMatch(
      /^snapshot .*quiesced snapshot unavailable \(MESSAGE_REMOVED\)/,
    );
  });
});

describe('targets and chains', () => {
  it('several remotes: exported once, the same chain written to both', async () => {
    const report = await stack.runJob('two-remotes');
    expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
    const transfers = vmReport(report, 'twice').steps.filter((s) => s.name === 'transfer');
    expect(transfers.map((t) => [t.target, t.status])).toEqual([
      ['nas', 'success'],
      ['usb', 'success'],
    ]);
    expect(vmReport(report, 'twice').steps.filter((s) => s.name === 'export')).toHaveLength(1);
    const vm = await stack.vm('twice');
    const [nas, usb] = await Promise.all(['nas', 'usb'].map((r) => listJson(stack.remoteDir(r), vm.uuid)));
    expect(nas).toEqual(usb);
    expect(nas).toHaveLength(1);
  });

  it('a VDI chain too long to snapshot: waits on a timer, then skips the VM with the reason', async () => {
    await stack.pool().control.settings({ maxChainLength: 1, autoCoalesce: false });
    try {
      const report = await stack.runJob('chain');
      const vm = vmReport(report, 'long-chain');
      expect(vm.status).toBe('skipped');
      expect(vm.detail).toMatch(/VDI chain too long, still not coalesced after 3s/);
      expect(vm.steps.filter((s) => s.name === 'snapshot').length).toBeGreaterThanOrEqual(2);
      expect(report.status).toBe('skipped');
    } finally {
      await stack.pool().control.settings({ maxChainLength: 30, autoCoalesce: true });
    }
    const dir = path.join(stack.remoteDir('nas'), 'xo-vm-backups', (await stack.vm('long-chain')).uuid);
    expect((await readdir(dir).catch(() => [])).filter((n) => n.endsWith('.json'))).toEqual([]);
  });
});
