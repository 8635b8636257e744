// Disaster recovery (full → SR) and continuous replication (delta → SR) into a second pool, on the
// simulator and a real Temporal server: the replica's disks equal the source snapshot's bytes run
// after run, a CR delta reads only the changed blocks, and the replica is marked as XO marks it.
import { rename } from 'node:fs/promises';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type VmRecord, vmDisks } from '../../activities/xapi-records';
import { type ReplicaRow, startReplica } from '../../cli/replicas';
import { REPLICA_TAGS, START_BLOCKED_REASON } from '../../core/replica';
import { pretty, waitFor } from '../durability/checks';
import { type BackupStack, readAll, startBackupStack } from '../helpers/backup-stack';
import { runXcpb } from '../helpers/cli';
import { listJson } from '../helpers/remote-files';
import {
  describeDisks,
  diskBytes,
  expectNoLeftovers,
  newestJobSnapshot,
  replicasOf,
  vdiBytes,
  vmReport,
  vmsWhere,
} from './helpers';

let stack: BackupStack;
const random = (seed: number, blocks: number) => ({ type: 'random' as const, seed, blocks });
const disk = (name: string, seed: number, size = '10MiB') => ({ name, size, content: random(seed, 3) });
const PW = 'replication-pw';
const schedule = (retention: Record<string, number>, copyRetention = 0) => [
  { id: 's', cron: '0 1 * * *', retention, copyRetention },
];
const TARGET = { pool: 'dr', sr: 'Replicas' };

const scenario = {
  pools: [
    {
      id: 'main',
      credentials: [{ username: 'root', password: PW }],
      hosts: [
        { name: 'main-1', cpu: { vendor: 'GenuineIntel', modelname: 'Xeon Gold', features: '1fcbfbff' } },
      ],
      srs: [{ id: 'local', name: 'Local', size: '4GiB', default: true }],
      networks: [{ id: 'net0', name: 'Network 0' }],
      vms: [
        {
          name: 'web',
          tags: ['cr'],
          power: 'Running' as const,
          networks: ['net0'],
          disks: [disk('w0', 1), disk('w1', 2)],
        },
        { name: 'db', tags: ['dr'], power: 'Halted' as const, disks: [disk('d0', 3)] },
        { name: 'mem', tags: ['ram'], power: 'Running' as const, memory: '8MiB', disks: [disk('m0', 4)] },
        { name: 'both', tags: ['both'], power: 'Halted' as const, disks: [disk('b0', 5)] },
        { name: 'hc', tags: ['hc'], power: 'Halted' as const, disks: [disk('h0', 7)] },
        { name: 'cut', tags: ['cancel'], power: 'Halted' as const, disks: [disk('c0', 6, '24MiB')] },
      ],
    },
    {
      id: 'dr',
      credentials: [{ username: 'root', password: PW }],
      hosts: [{ name: 'dr-1', cpu: { vendor: 'AuthenticAMD', modelname: 'EPYC', features: '178bfbff' } }],
      srs: [{ id: 'replicas', name: 'Replicas', size: '4GiB', default: true }],
      networks: [{ id: 'net0', name: 'Network 0' }],
    },
  ],
};

beforeAll(async () => {
  stack = await startBackupStack({
    scenario,
    remotes: ['nas'],
    jobs: [
      {
        id: 'cr',
        name: 'nightly CR',
        mode: 'delta',
        vms: { pools: ['main'], tags: ['cr'] },
        srs: [TARGET],
        schedules: schedule({}, 2),
      },
      {
        id: 'dr',
        mode: 'full',
        vms: { pools: ['main'], tags: ['dr'] },
        srs: [TARGET],
        schedules: schedule({}, 1),
      },
      {
        id: 'ram',
        mode: 'delta',
        snapshotMode: 'memory',
        vms: { pools: ['main'], tags: ['ram'] },
        srs: [TARGET],
        schedules: schedule({}, 1),
      },
      {
        id: 'hc',
        mode: 'full',
        vms: { pools: ['main'], tags: ['hc'] },
        srs: [TARGET],
        schedules: [
          {
            id: 's',
            cron: '0 1 * * *',
            copyRetention: 1,
            healthCheck: { sr: 'Replicas', timeout: '2m' },
          },
        ],
      },
      {
        id: 'cancel',
        mode: 'delta',
        vms: { pools: ['main'], tags: ['cancel'] },
        srs: [TARGET],
        schedules: schedule({}, 2),
      },
      {
        id: 'sweep',
        mode: 'snapshot',
        vms: { pools: ['dr'], tags: ['cr'] },
        schedules: schedule({ snapshot: 1 }),
      },
      {
        id: 'both',
        mode: 'delta',
        vms: { pools: ['main'], tags: ['both'] },
        remotes: ['nas'],
        srs: [TARGET],
        schedules: schedule({ remote: 3 }, 3),
      },
    ],
  });
}, 120_000);

afterAll(async () => {
  await stack?.close();
}, 60_000);

describe('continuous replication', () => {
  it('the first run is a full, each later run a delta onto a clone of the previous replica: the disks stay exact', async () => {
    const web = await stack.vm('web', 'main');
    const xapi = await stack.xapi('main');
    await xapi.call('VM.set_ha_restart_priority', await xapi.call('VM.get_by_uuid', web.uuid), 'restart');
    await xapi.logout();
    const main = stack.pool('main').control;
    for (let run = 0; run < 4; run++) {
      let changed = 0;
      if (run > 0) {
        // The guest writes between runs: only these blocks may be read by the next export.
        changed += (await main.writeRandomBlocks(web.disks[0].uuid, { count: 2, seed: `cr ${run}` })).length;
        if (run % 2 === 0)
          changed += (await main.writeRandomBlocks(web.disks[1].uuid, { count: 1, seed: `cr1 ${run}` }))
            .length;
      }
      await main.resetStats();
      const report = await stack.runJob('cr');
      const vm = vmReport(report, 'web');
      expect(vm.status, JSON.stringify(vm.steps, null, 1)).toBe('success');
      const exports = vm.steps.filter((s) => s.name === 'export');
      if (run === 0) expect(exports.every((s) => s.detail?.startsWith('full'))).toBe(true);
      else {
        expect(exports.map((s) => s.detail)).toEqual(
          exports.map(() => expect.stringMatching(/^delta from /)),
        );
        expect((await main.stats()).blocksRead).toBe(changed);
      }
      const snapshot = await newestJobSnapshot(stack, 'main', web.uuid, 'cr');
      const replicas = (await replicasOf(stack, 'dr', web.uuid, 'cr')).filter(
        (r) => r.vm.other_config['xo:backup:sr'],
      );
      expect(replicas).toHaveLength(Math.min(run + 1, 2));
      const newest = replicas.at(-1)!;
      expect(newest.vm.other_config['xo:backup:datetime']).toBe(
        snapshot.vm.other_config['xo:backup:datetime'],
      );
      expect(describeDisks(await diskBytes(stack, 'dr', newest.vm))).toEqual(
        describeDisks(await diskBytes(stack, 'main', snapshot.vm)),
      );
      await expectNoLeftovers(stack, 'dr', web.uuid);
    }
  }, 300_000);

  it('marks the replica as XO does: name, tags, HA cleared, start blocked, keys, a snapshot', async () => {
    const web = await stack.vm('web', 'main');
    const [, newest] = await replicasOf(stack, 'dr', web.uuid, 'cr');
    const { vm } = newest;
    expect(vm.name_label).toMatch(/^web - nightly CR - \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$/);
    expect(vm.tags).toEqual(expect.arrayContaining(['cr', REPLICA_TAGS.cr, REPLICA_TAGS.haDisabled]));
    expect(vm.ha_restart_priority).toBe('');
    expect(vm.power_state).toBe('Halted');
    expect(vm.blocked_operations).toMatchObject({
      start: START_BLOCKED_REASON,
      start_on: START_BLOCKED_REASON,
    });
    const sr = await stack.xapi('dr');
    const srUuid = await sr.call<string>(
      'SR.get_uuid',
      (await sr.call<string[]>('SR.get_by_name_label', 'Replicas'))[0],
    );
    expect(vm.other_config).toMatchObject({
      'xo:backup:job': 'cr',
      'xo:backup:schedule': 's',
      'xo:backup:vm': web.uuid,
      'xo:backup:sr': srUuid,
      'xo:copy_of': web.uuid,
      'xcpb:created-by': 'replica',
    });
    // The replica is snapshotted: the base of the next delta, safe from whatever a clone does.
    expect(vm.snapshots).toHaveLength(1);
    const disks = await vmDisks(sr, vm);
    expect(disks.map((d) => d.vdi.SR)).toEqual(disks.map(() => expect.stringMatching(/^OpaqueRef:/)));
    await sr.logout();
  });

  it('a replica base gone from the target SR: that run is a full, and the report says why', async () => {
    const web = await stack.vm('web', 'main');
    const replicas = await replicasOf(stack, 'dr', web.uuid, 'cr');
    const xapi = await stack.xapi('dr');
    // Someone deletes the replicas' snapshots (the delta bases), disks included.
    for (const r of replicas)
      for (const snap of r.vm.snapshots) {
        const disks = await vmDisks(xapi, await xapi.getRecord<VmRecord>('VM', snap));
        await xapi.call('VM.destroy', snap);
        for (const d of disks) await xapi.call('VDI.destroy', d.vdiRef);
      }
    await xapi.logout();
    const report = await stack.runJob('cr');
    const vm = vmReport(report, 'web');
    expect(vm.status, JSON.stringify(vm.steps, null, 1)).toBe('success');
    const exports = vm.steps.filter((s) => s.name === 'export');
    expect(exports.map((s) => s.detail)).toEqual(
      exports.map(() =>
        expect.stringMatching(
          /^full: base backup of .* missing or broken on SR dr\/Replicas \(no replica of base/,
        ),
      ),
    );
    const snapshot = await newestJobSnapshot(stack, 'main', web.uuid, 'cr');
    const newest = (await replicasOf(stack, 'dr', web.uuid, 'cr')).at(-1)!;
    expect(describeDisks(await diskBytes(stack, 'dr', newest.vm))).toEqual(
      describeDisks(await diskBytes(stack, 'main', snapshot.vm)),
    );
  }, 120_000);

  it('the replicas are never selected by smart mode (a job over the target pool skips them)', async () => {
    const replicas = await replicasOf(stack, 'dr', (await stack.vm('web', 'main')).uuid, 'cr');
    expect(replicas.length).toBeGreaterThan(0);
    const report = await stack.runJob('sweep');
    expect(report.vms.map((v) => v.vmName)).toEqual([]);
  });
});

describe('disaster recovery', () => {
  it('each run imports the XVA into the target SR: exact disks, XO marks, older replicas deleted after', async () => {
    const db = await stack.vm('db', 'main');
    for (let run = 0; run < 2; run++) {
      if (run > 0)
        await stack.pool('main').control.writeRandomBlocks(db.disks[0].uuid, { count: 2, seed: `dr ${run}` });
      const report = await stack.runJob('dr');
      const vm = vmReport(report, 'db');
      expect(vm.status, JSON.stringify(vm.steps, null, 1)).toBe('success');
      const replicas = await replicasOf(stack, 'dr', db.uuid, 'dr');
      expect(replicas).toHaveLength(1); // retention 1: the previous one went once the new one was complete
      const { vm: replica } = replicas[0];
      expect(replica.name_label).toMatch(/^db - dr - \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$/);
      expect(replica.is_a_template).toBe(false);
      expect(replica.tags).toEqual(expect.arrayContaining(['dr', REPLICA_TAGS.dr]));
      expect(replica.tags).not.toContain(REPLICA_TAGS.haDisabled);
      expect(replica.blocked_operations).toMatchObject({
        start: START_BLOCKED_REASON,
        start_on: START_BLOCKED_REASON,
      });
      expect(Object.keys(replica.other_config)).toEqual(
        expect.arrayContaining([
          'xo:backup:job',
          'xo:backup:schedule',
          'xo:backup:vm',
          'xo:backup:datetime',
          'xo:backup:sr',
        ]),
      );
      // A full backup deletes its snapshot: compare with the live disk, unchanged since the run.
      const live = (await stack.vm('db', 'main')).disks;
      const source = await stack.pool('main').control.readVdi(live[0].uuid);
      expect(describeDisks(await diskBytes(stack, 'dr', replica))).toEqual(
        describeDisks([await readAll(source)]),
      );
      await expectNoLeftovers(stack, 'dr', db.uuid);
    }
  }, 180_000);

  it('the SR full mid-import: the import fails, no half VM or VDI is left, the older replica is kept', async () => {
    const db = await stack.vm('db', 'main');
    const [kept] = await replicasOf(stack, 'dr', db.uuid, 'dr');
    const x = await stack.xapi('dr');
    const srUuid = await x.call<string>(
      'SR.get_uuid',
      (await x.call<string[]>('SR.get_by_name_label', 'Replicas'))[0],
    );
    await x.logout();
    await stack.pool('dr').control.fillSr(srUuid, true);
    try {
      const report = await stack.runJob('dr');
      const vm = vmReport(report, 'db');
      expect(vm.status).toBe('failure');
      const transfer = vm.steps.find((s) => s.name === 'transfer' && s.target === 'dr/Replicas');
      expect(transfer?.status).toBe('failure');
      // XAPI's reason, not the stream's: the SR is full.
      expect(transfer?.error, pretty(vm)).toMatchObject({ code: 'SR_FULL' });
      expect(transfer?.error?.message).toMatch(/SR_FULL/);
    } finally {
      await stack.pool('dr').control.fillSr(srUuid, false);
    }
    expect((await replicasOf(stack, 'dr', db.uuid, 'dr')).map((r) => r.vm.uuid)).toEqual([kept.vm.uuid]);
    await expectNoLeftovers(stack, 'dr', db.uuid);
  }, 120_000);
});

describe('health check on replicas', () => {
  it('a clone of the new replica is started, its agent awaited, then deleted; the replica stays', async () => {
    const hc = await stack.vm('hc', 'main');
    const report = await stack.runJob('hc');
    const vm = vmReport(report, 'hc');
    expect(vm.status, JSON.stringify(vm.steps, null, 1)).toBe('success');
    expect(vm.steps.find((s) => s.name === 'healthCheck')).toMatchObject({
      status: 'success',
      target: 'dr/Replicas',
      detail: expect.stringMatching(/clone of the replica started, guest agent reported/),
    });
    const left = await vmsWhere(stack, 'dr', (v) => v.name_label.includes('(health check)'));
    expect(left.map((v) => v.vm.name_label)).toEqual([]);
    const replicas = await replicasOf(stack, 'dr', hc.uuid, 'hc');
    expect(replicas.map((r) => r.vm.power_state)).toEqual(['Halted']);
    await expectNoLeftovers(stack, 'dr', hc.uuid);
  }, 180_000);
});

describe('RAM-enabled continuous replication', () => {
  it('the replica is Suspended on its own copy of the checkpoint memory', async () => {
    const mem = await stack.vm('mem', 'main');
    const report = await stack.runJob('ram');
    expect(vmReport(report, 'mem').status).toBe('success');
    // The report warns that the memory image may not resume on the target's different CPU.
    expect(vmReport(report, 'mem').steps.find((s) => s.name === 'replica')?.detail).toMatch(
      /target host's CPU \(AuthenticAMD EPYC\) differs from the source's \(GenuineIntel Xeon Gold\)/,
    );
    const [replica] = (await replicasOf(stack, 'dr', mem.uuid, 'ram')).filter(
      (r) => r.vm.other_config['xo:backup:sr'],
    );
    expect(replica.vm.power_state).toBe('Suspended');
    const checkpoint = await newestJobSnapshot(stack, 'main', mem.uuid, 'ram');
    expect(checkpoint.vm.suspend_VDI).not.toBe('OpaqueRef:NULL');
    expect(describeDisks([await vdiBytes(stack, 'dr', replica.vm.suspend_VDI)])).toEqual(
      describeDisks([await vdiBytes(stack, 'main', checkpoint.vm.suspend_VDI)]),
    );
    expect(describeDisks(await diskBytes(stack, 'dr', replica.vm))).toEqual(
      describeDisks(await diskBytes(stack, 'main', checkpoint.vm)),
    );
  }, 120_000);
});

describe('remotes and SRs in one job', () => {
  it('one export feeds the remote and the replica', async () => {
    const both = await stack.vm('both', 'main');
    const report = await stack.runJob('both');
    const vm = vmReport(report, 'both');
    expect(vm.status, JSON.stringify(vm.steps, null, 1)).toBe('success');
    expect(vm.steps.filter((s) => s.name === 'export')).toHaveLength(1);
    expect(vm.steps.filter((s) => s.name === 'transfer').map((s) => [s.target, s.status])).toEqual([
      ['nas', 'success'],
      ['dr/Replicas', 'success'],
    ]);
    expect(await listJson(stack.remoteDir('nas'), both.uuid)).toHaveLength(1);
    expect((await replicasOf(stack, 'dr', both.uuid, 'both')).length).toBe(1);
  }, 120_000);

  it('the remote gone: the replica is still made, the VM reports the remote failed', async () => {
    const both = await stack.vm('both', 'main');
    const nas = stack.remoteDir('nas');
    await rename(nas, `${nas}.gone`);
    try {
      const report = await stack.runJob('both');
      const vm = vmReport(report, 'both');
      expect(vm.steps.find((s) => s.name === 'transfer' && s.target === 'nas')?.status).toBe('failure');
      expect(vm.steps.find((s) => s.name === 'replica')?.status).toBe('success');
    } finally {
      await rename(`${nas}.gone`, nas);
    }
    expect((await replicasOf(stack, 'dr', both.uuid, 'both')).length).toBe(2);
    await expectNoLeftovers(stack, 'dr', both.uuid);
  }, 120_000);

  it('the SR full mid-import: the remote backup is still made, no half replica is left', async () => {
    const both = await stack.vm('both', 'main');
    await stack
      .pool('main')
      .control.writeRandomBlocks(both.disks[0].uuid, { count: 1, seed: 'both sr full' });
    const before = await listJson(stack.remoteDir('nas'), both.uuid);
    const srUuid = await (async () => {
      const x = await stack.xapi('dr');
      const uuid = await x.call<string>(
        'SR.get_uuid',
        (await x.call<string[]>('SR.get_by_name_label', 'Replicas'))[0],
      );
      await x.logout();
      return uuid;
    })();
    await stack.pool('dr').control.fillSr(srUuid, true);
    try {
      const report = await stack.runJob('both');
      const vm = vmReport(report, 'both');
      expect(vm.steps.find((s) => s.name === 'transfer' && s.target === 'nas')?.status).toBe('success');
      // The SR writer fails where the SR refuses (a new VDI, or the import itself) and is dropped.
      const failed = vm.steps.find((s) => s.target === 'dr/Replicas' && s.status === 'failure');
      expect(failed?.error, pretty(vm)).toMatchObject({ code: 'SR_FULL' });
      expect(vm.steps.find((s) => s.name === 'replica')).toBeUndefined();
    } finally {
      await stack.pool('dr').control.fillSr(srUuid, false);
    }
    expect((await listJson(stack.remoteDir('nas'), both.uuid)).length).toBe(before.length + 1);
    expect((await replicasOf(stack, 'dr', both.uuid, 'both')).length).toBe(2);
    await expectNoLeftovers(stack, 'dr', both.uuid);
    // The next run completes the replica set again.
    const report = await stack.runJob('both');
    expect(vmReport(report, 'both').status).toBe('success');
    expect((await replicasOf(stack, 'dr', both.uuid, 'both')).length).toBe(3);
    await expectNoLeftovers(stack, 'dr', both.uuid);
  }, 180_000);
});

describe('an interrupted import', () => {
  it('cancelled mid-import: no half replica, no orphan VDI; the next run makes a complete one', async () => {
    const cut = await stack.vm('cut', 'main');
    const main = stack.pool('main').control;
    expect((await stack.runJob('cancel')).status).toBe('success');
    await main.writeRandomBlocks(cut.disks[0].uuid, { count: 10, seed: 'cancelled CR' });
    await main.throttle({ bytesPerSecond: 1 << 20 }); // ~20 MiB of delta: ~20 s
    const handle = await stack.startJob('cancel');
    try {
      await waitFor(
        'the import under way on the target',
        async () => (await stack.pool('dr').control.stats()).current.import_raw_vdi > 0,
        90_000,
      );
      await handle.cancel();
      expect(
        await handle.result().then(
          () => 'completed',
          (e: unknown) => e,
        ),
      ).toBeInstanceOf(WorkflowFailedError);
    } finally {
      await main.throttle({ bytesPerSecond: 0 });
    }
    await expectNoLeftovers(stack, 'dr', cut.uuid);
    expect((await replicasOf(stack, 'dr', cut.uuid, 'cancel')).length).toBe(1);

    const report = await stack.runJob('cancel');
    expect(vmReport(report, 'cut').status).toBe('success');
    const replicas = await replicasOf(stack, 'dr', cut.uuid, 'cancel');
    expect(replicas.map((r) => !!r.vm.other_config['xo:backup:sr'])).toEqual([true, true]);
    const snapshot = await newestJobSnapshot(stack, 'main', cut.uuid, 'cancel');
    expect(describeDisks(await diskBytes(stack, 'dr', replicas[1].vm))).toEqual(
      describeDisks(await diskBytes(stack, 'main', snapshot.vm)),
    );
    await expectNoLeftovers(stack, 'dr', cut.uuid);
  }, 240_000);
});

describe('xcpb replicas', () => {
  it('list shows the complete replicas of a job; start fails over to a clone and keeps the replica', async () => {
    const file = await stack.writeConfigFile();
    const r = await runXcpb(['replicas', 'list', '--config', file, '--job', 'cr', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows: ReplicaRow[] = JSON.parse(r.stdout).replicas;
    const web = await stack.vm('web', 'main');
    const complete = (await replicasOf(stack, 'dr', web.uuid, 'cr')).filter(
      (x) => x.vm.other_config['xo:backup:sr'],
    );
    expect(rows.map((x) => x.vmUuid).sort()).toEqual(complete.map((x) => x.vm.uuid).sort());
    expect(rows.every((x) => x.jobId === 'cr' && x.poolId === 'dr' && x.sourceVmUuid === web.uuid)).toBe(
      true,
    );

    const xapi = await stack.xapi('dr');
    try {
      const started = await startReplica(xapi, rows[0].vmUuid);
      expect(started.powerState).toBe('Running');
      const clone = await xapi.getRecord<VmRecord>('VM', await xapi.call('VM.get_by_uuid', started.vmUuid));
      expect(clone.other_config['xo:backup:sr']).toBeUndefined();
      expect(clone.tags).not.toContain(REPLICA_TAGS.cr);
      // Its disks are the user's now: no replica keys, so no run ever takes one for a leftover.
      const cloneDisks = await vmDisks(xapi, clone);
      expect(cloneDisks.length).toBeGreaterThan(0);
      expect(cloneDisks.map((d) => d.vdi.other_config['xo:backup:vm'])).toEqual(
        cloneDisks.map(() => undefined),
      );
      const replica = await xapi.getRecord<VmRecord>('VM', await xapi.call('VM.get_by_uuid', rows[0].vmUuid));
      expect(replica.power_state).toBe('Halted');
      expect(replica.blocked_operations).toMatchObject({ start: START_BLOCKED_REASON });
      // A RAM-enabled replica is resumed, not booted: its suspended snapshot is what gets cloned.
      const mem = await stack.vm('mem', 'main');
      const [ram] = (await replicasOf(stack, 'dr', mem.uuid, 'ram')).filter(
        (x) => x.vm.other_config['xo:backup:sr'],
      );
      const resumed = await startReplica(xapi, ram.vm.uuid);
      expect(resumed.powerState).toBe('Running');
      expect((await xapi.getRecord<VmRecord>('VM', ram.ref)).power_state).toBe('Suspended');
    } finally {
      await xapi.logout();
    }
  }, 120_000);
});
