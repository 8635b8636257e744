// Delta backups end to end: real Temporal, the simulator over HTTP, a local remote. After every run,
// each disk's chain on the remote, rebuilt by qemu-img alone, equals the VM's disk at that snapshot.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../core/run-report';
import { openVhdFile } from '../../formats/vhd';
import { type BackupStack, chainToRaw, readAll, startBackupStack } from '../helpers/backup-stack';
import { chainUpTo, filesUnder, listJson, readBackup } from '../helpers/remote-files';

let stack: BackupStack;
const random = (seed: number, blocks: number) => ({ type: 'random' as const, seed, blocks });

const scenario = {
  pools: [
    {
      id: 'lab',
      credentials: [{ username: 'root', password: 'lab-secret-pw' }],
      srs: [{ id: 'local', name: 'Local', size: '4GiB', default: true }],
      networks: [{ id: 'net0', name: 'Network 0' }],
      vms: [
        {
          name: 'web',
          tags: ['prod'],
          power: 'Running' as const,
          networks: ['net0'],
          disks: [
            { name: 'web root', size: '20MiB', content: random(1, 4) },
            { name: 'web data', size: '9MiB', content: random(2, 2) }, // not a multiple of 2 MiB
            { name: 'scratch [NOBAK]', size: '8MiB', content: random(3, 2) },
          ],
        },
        {
          name: 'db',
          tags: ['prod', 'db'],
          power: 'Halted' as const,
          disks: [{ name: 'db root', size: '16MiB', content: random(4, 3) }],
        },
        {
          name: 'dev',
          tags: ['dev'],
          power: 'Running' as const,
          disks: [{ name: 'dev root', size: '8MiB' }],
        },
        {
          name: 'private',
          tags: ['prod', 'xo:no-bak'],
          power: 'Running' as const,
          disks: [{ name: 'p root', size: '8MiB' }],
        },
      ],
    },
  ],
};

const schedule = (keep: number) => [
  { id: 'daily', cron: '0 3 * * *', retention: { remote: keep, snapshot: 1 } },
];

beforeAll(async () => {
  stack = await startBackupStack({
    scenario,
    jobs: [
      { id: 'nightly', mode: 'delta', vms: { tags: ['prod'] }, remotes: ['nas'], schedules: schedule(3) },
      {
        id: 'interval',
        mode: 'delta',
        vms: { tags: ['db'] },
        remotes: ['nas'],
        fullInterval: 2,
        schedules: schedule(10),
      },
    ],
  });
});
afterAll(() => stack?.close());

/** The disk bytes at each backup (`<vm>/<ts>/<liveVdi>`), recorded while the snapshot still existed. */
const truths = new Map<string, Buffer>();

/** Checks every disk of the VM's newest backup against the snapshot it was taken from. */
async function expectNewestBackupMatchesSnapshot(vmName: string, jobId: string) {
  const vm = await stack.vm(vmName);
  const remote = stack.remoteDir('nas');
  const newest = (await listJson(remote, vm.uuid)).filter(Boolean).at(-1)!;
  const backup = await readBackup(remote, vm.uuid, newest.replace('.json', ''));
  expect(backup.metadata).toMatchObject({ mode: 'delta', jobId, version: '2.0.0', vm: { uuid: vm.uuid } });
  for (const disk of backup.disks) {
    const chain = await chainUpTo(remote, vm.uuid, jobId, disk.liveVdi, backup.ts);
    const judged = await chainToRaw(chain);
    const truth = await readAll(await stack.pool().control.readVdi(disk.snapshotVdi));
    truths.set(`${vm.uuid}/${backup.ts}/${disk.liveVdi}`, truth);
    expect(
      judged.equals(truth),
      `${vmName} ${disk.liveVdi} chain ${chain.map((c) => path.basename(c))}`,
    ).toBe(true);
  }
  return backup;
}

async function jobSnapshotsOf(vmUuid: string, jobId: string) {
  return (await stack.pool().control.snapshots()).filter(
    (s) => s.other_config['xo:backup:vm'] === vmUuid && s.other_config['xo:backup:job'] === jobId,
  );
}

function step(report: RunReport, vmName: string, name: string) {
  return report.vms.find((v) => v.vmName === vmName)!.steps.filter((s) => s.name === name);
}

describe('delta backup', () => {
  it('selects by tag, never xo:no-bak; leaves [NOBAK] disks out; the first run is a full', async () => {
    const report = await stack.runJob('nightly');
    expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
    expect(report.vms.map((v) => v.vmName).sort()).toEqual(['db', 'web']);
    const web = await expectNewestBackupMatchesSnapshot('web', 'nightly');
    expect(web.disks).toHaveLength(2);
    expect(web.disks.every((d) => !d.differencing)).toBe(true);
    expect(step(report, 'web', 'export').find((s) => s.target === 'scratch [NOBAK]')).toMatchObject({
      status: 'skipped',
    });
    expect(
      step(report, 'web', 'export')
        .filter((s) => s.status === 'success')
        .map((s) => s.detail),
    ).toEqual([
      expect.stringContaining('full: no exported snapshot'),
      expect.stringContaining('full: no exported snapshot'),
    ]);
    await expectNewestBackupMatchesSnapshot('db', 'nightly');
    const vm = await stack.vm('web');
    expect(await jobSnapshotsOf(vm.uuid, 'nightly')).toHaveLength(1);
  });

  it('the second run exports only the changed blocks, as a differencing VHD chained to the first', async () => {
    const web = await stack.vm('web');
    await stack.pool().control.writeRandomBlocks(web.disks[0].uuid, { count: 2, seed: 'second run' });
    const report = await stack.runJob('nightly');
    expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
    const backup = await expectNewestBackupMatchesSnapshot('web', 'nightly');
    expect(backup.disks.every((d) => d.differencing)).toBe(true);
    await expectNewestBackupMatchesSnapshot('db', 'nightly');

    const root = backup.disks.find((d) => d.liveVdi === web.disks[0].uuid)!;
    const chain = await chainUpTo(stack.remoteDir('nas'), web.uuid, 'nightly', root.liveVdi, backup.ts);
    expect(chain).toHaveLength(2);
    const [parent, child] = await Promise.all(chain.map((f) => openVhdFile(f)));
    expect(child.diskType).toBe(4);
    expect(child.header?.parentUuid).toBe(parent.uuid);
    expect(child.uuid).toBe(root.snapshotVdi); // XO's chain check: the file carries the snapshot VDI's uuid
    expect(child.blocks().length).toBeLessThanOrEqual(2);
    await Promise.all([parent.close(), child.close()]);

    const dbExports = step(report, 'db', 'export');
    expect(dbExports[0].detail).toMatch(/^delta from/);
    expect(await jobSnapshotsOf(web.uuid, 'nightly')).toHaveLength(1);
  });

  it('retention keeps 3 backups, merging the oldest deltas; every kept point stays exact', async () => {
    const web = await stack.vm('web');
    for (let i = 0; i < 3; i++) {
      await stack.pool().control.writeRandomBlocks(web.disks[1].uuid, { count: 1, seed: `run ${i}` });
      const report = await stack.runJob('nightly');
      expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
      await expectNewestBackupMatchesSnapshot('web', 'nightly');
    }
    const jsons = await listJson(stack.remoteDir('nas'), web.uuid);
    expect(jsons).toHaveLength(3);
    const oldest = await readBackup(stack.remoteDir('nas'), web.uuid, jsons[0].replace('.json', ''));
    expect(oldest.disks.every((d) => !d.differencing)).toBe(true); // merged into a full
    for (const d of oldest.disks) {
      const chain = await chainUpTo(stack.remoteDir('nas'), web.uuid, 'nightly', d.liveVdi, oldest.ts);
      expect(chain).toHaveLength(1);
    }
    // Every kept point, merged or not, still rebuilds the disk as it was at its snapshot.
    for (const json of jsons) {
      const kept = await readBackup(stack.remoteDir('nas'), web.uuid, json.replace('.json', ''));
      for (const d of kept.disks) {
        const chain = await chainUpTo(stack.remoteDir('nas'), web.uuid, 'nightly', d.liveVdi, kept.ts);
        const truth = truths.get(`${web.uuid}/${kept.ts}/${d.liveVdi}`);
        expect(truth, `bytes recorded for ${kept.ts}`).toBeDefined();
        expect((await chainToRaw(chain)).equals(truth!), `${kept.ts} ${d.liveVdi}`).toBe(true);
      }
    }
    const files = await filesUnder(path.join(stack.remoteDir('nas'), 'xo-vm-backups', web.uuid));
    expect(files.filter((f) => f.endsWith('.vhd'))).toHaveLength(6); // 3 backups × 2 disks
    expect(files.filter((f) => f.split('/').pop()!.startsWith('.'))).toEqual([]); // no temp, state or lock file
  });

  it('falls back to a full, per disk, when the base backup is missing on the remote', async () => {
    const web = await stack.vm('web');
    const remote = stack.remoteDir('nas');
    const newest = (await listJson(remote, web.uuid)).at(-1)!.replace('.json', '');
    const { rm } = await import('node:fs/promises');
    const data = (await readBackup(remote, web.uuid, newest)).disks.find(
      (d) => d.liveVdi === web.disks[1].uuid,
    )!;
    await rm(path.join(remote, 'xo-vm-backups', web.uuid, data.vhd));
    const report = await stack.runJob('nightly');
    expect(report.status, JSON.stringify(report, null, 1)).toBe('success');
    const exports = step(report, 'web', 'export').filter((s) => s.status === 'success');
    expect(exports.find((s) => s.target === web.disks[1].name)?.detail).toMatch(
      /full: base backup of \d+T\d+Z missing or broken on nas/,
    );
    expect(exports.find((s) => s.target === web.disks[0].name)?.detail).toMatch(/^delta from/);
    await expectNewestBackupMatchesSnapshot('web', 'nightly');
  });

  it('fullInterval: a full every 2nd run of the chain, and the report says why', async () => {
    const reasons: string[] = [];
    for (let i = 0; i < 3; i++) {
      const report = await stack.runJob('interval');
      expect(report.status).toBe('success');
      reasons.push(step(report, 'db', 'export')[0].detail ?? '');
      await expectNewestBackupMatchesSnapshot('db', 'interval');
    }
    expect(reasons[0]).toMatch(/^full: no exported snapshot/);
    expect(reasons[1]).toMatch(/^delta from/);
    expect(reasons[2]).toMatch(/^full: full interval reached \(2 of 2\)/);
  });
});
