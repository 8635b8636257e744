import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimPool, type Simulator, startSimulator } from '../../simulator/index';
import { SCHEMAS } from '../../simulator/objects/schema';
import { XFloat } from '../../simulator/rpc/values';
import { MiB, smallScenario } from './fixtures';
import { failureOf, login, rpc, vmByName, waitTask } from './rpc-helpers';

let sim: Simulator;
let pool: SimPool;
let url: string;
let s: string;
beforeAll(async () => {
  sim = await startSimulator({ scenario: smallScenario() });
  pool = sim.pool('lab');
  url = pool.url;
  s = await login(url);
});
afterAll(() => sim?.close());

async function diskOf(vmName: string): Promise<{ ref: string; uuid: string; sr: string }> {
  const vm = await vmByName(url, s, vmName);
  for (const vbd of await rpc<string[]>(url, 'VM.get_VBDs', s, vm)) {
    const r = await rpc(url, 'VBD.get_record', s, vbd);
    if (r.type === 'Disk') {
      const v = await rpc(url, 'VDI.get_record', s, r.VDI);
      return { ref: r.VDI, uuid: v.uuid, sr: v.SR };
    }
  }
  throw new Error('no disk');
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('fault injection', () => {
  it('an error code on the nth call of a method, for `times` calls, then normal again', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    await pool.control.injectFault({
      method: 'VM.snapshot',
      code: 'SR_BACKEND_FAILURE_44',
      params: ['', 'There is insufficient space', ''],
      nth: 2,
      times: 2,
    });
    const first = await rpc(url, 'VM.snapshot', s, vm, 'ok-1');
    expect(first).toMatch(/^OpaqueRef:/);
    expect(await failureOf(url, 'VM.snapshot', s, vm, 'f-2')).toEqual([
      'SR_BACKEND_FAILURE_44',
      '',
      'There is insufficient space',
      '',
    ]);
    // Async calls fail in their task
    const task = await rpc(url, 'Async.VM.snapshot', s, vm, 'f-3');
    expect((await waitTask(url, s, task)).error_info).toEqual([
      'SR_BACKEND_FAILURE_44',
      '',
      'There is insufficient space',
      '',
    ]);
    expect(await rpc(url, 'VM.snapshot', s, vm, 'ok-4')).toMatch(/^OpaqueRef:/);
    // other methods are not affected
    await pool.control.injectFault({ method: 'VM.get_record', code: 'INTERNAL_ERROR', params: ['boom'] });
    expect(await rpc(url, 'VM.get_name_label', s, vm)).toBe('dev-1');
    expect(await failureOf(url, 'VM.get_record', s, vm)).toEqual(['INTERNAL_ERROR', 'boom']);
    expect((await rpc(url, 'VM.get_record', s, vm)).name_label).toBe('dev-1');
  });

  it('an export cut after N bytes: the client gets exactly N bytes, the task fails with VDI_IO_ERROR', async () => {
    const disk = await diskOf('dev-1');
    await pool.control.cutExport({ afterBytes: 3 * MiB + 5 });
    const task = await rpc(url, 'task.create', s, 'cut', '');
    const res = await fetch(`${url}/export_raw_vdi?session_id=${s}&task_id=${task}&vdi=${disk.ref}`);
    expect(res.status).toBe(200);
    let got = 0;
    let failed = false;
    try {
      for await (const c of res.body as any) got += (c as Uint8Array).length;
    } catch {
      failed = true;
    }
    expect(got).toBe(3 * MiB + 5);
    expect(failed || got < 8 * MiB).toBe(true);
    const rec = await waitTask(url, s, task);
    expect(rec.status).toBe('failure');
    expect(rec.error_info).toEqual(['VDI_IO_ERROR', 'Device I/O errors']);
    // only once: the next export is whole
    const again = await fetch(`${url}/export_raw_vdi?session_id=${s}&vdi=${disk.ref}`);
    expect((await again.arrayBuffer()).byteLength).toBe(8 * MiB);
  });

  it('a throttled export is still running after the first MiB and delivers every byte', async () => {
    const disk = await diskOf('dev-1');
    const expected = await readAll(await pool.control.readVdi(disk.uuid));
    await pool.control.throttle({ bytesPerSecond: 4 * MiB });
    const res = await fetch(`${url}/export_raw_vdi?session_id=${s}&vdi=${disk.ref}`);
    const chunks: Buffer[] = [];
    let size = 0;
    let runningAfterFirstMiB: number | undefined;
    for await (const c of res.body as any) {
      chunks.push(Buffer.from(c));
      size += c.length;
      if (runningAfterFirstMiB === undefined && size >= MiB)
        runningAfterFirstMiB = (await pool.control.stats()).current.export_raw_vdi;
    }
    await pool.control.throttle({ bytesPerSecond: 0 });
    expect(runningAfterFirstMiB).toBe(1);
    expect(Buffer.concat(chunks).equals(expected)).toBe(true);
  });

  it('a full SR: snapshots and VDI creation fail with SR_FULL [requested, 0]; unfilled it works again', async () => {
    const disk = await diskOf('dev-1');
    const vm = await vmByName(url, s, 'dev-1');
    const srUuid = await rpc(url, 'SR.get_uuid', s, disk.sr);
    await pool.control.fillSr(srUuid, true);
    expect(await failureOf(url, 'VM.snapshot', s, vm, 'no room')).toEqual(['SR_FULL', String(2 * MiB), '0']);
    const args = {
      SR: disk.sr,
      virtual_size: MiB,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    };
    expect(await failureOf(url, 'VDI.create', s, args)).toEqual(['SR_FULL', String(MiB), '0']);
    await pool.control.fillSr(srUuid, false);
    expect(await rpc(url, 'VM.snapshot', s, vm, 'room again')).toMatch(/^OpaqueRef:/);
  });

  it('a delay keeps the operation in progress, which the stats see as concurrency', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    const other = await vmByName(url, s, 'prod-1');
    await pool.control.resetStats();
    await pool.control.delay('VM.snapshot', 300);
    const tasks = [
      await rpc(url, 'Async.VM.snapshot', s, vm, 'c1'),
      await rpc(url, 'Async.VM.snapshot', s, vm, 'c2'),
      await rpc(url, 'Async.VM.snapshot', s, other, 'c3'),
    ];
    for (const t of tasks) expect((await waitTask(url, s, t)).status).toBe('success');
    await pool.control.delay('VM.snapshot', 0);
    const stats = await pool.control.stats();
    expect(stats.maxConcurrent.snapshot).toBe(3);
    expect(stats.current.snapshot).toBe(0);
    await pool.control.resetStats();
    expect((await pool.control.stats()).maxConcurrent.snapshot).toBe(0);
  });

  it('bad control requests name what is wrong', async () => {
    await expect(pool.control.injectFault({ method: 'VM.snapshot', code: 'X', nth: 0 })).rejects.toThrow(
      /nth must be an integer >= 1/,
    );
    await expect(pool.control.vdiInfo('nope')).rejects.toThrow(/no VDI with uuid nope/);
    const disk = await diskOf('dev-1');
    await expect(pool.control.writeBytes(disk.uuid, 8 * MiB - 1, Buffer.from('xx'))).rejects.toThrow(
      /past the VDI's size/,
    );
  });
});

describe('guest data and inspection', () => {
  it('writes bytes at an offset and seeded random blocks; reads the current bytes back', async () => {
    const disk = await diskOf('dev-1');
    const before = await readAll(await pool.control.readVdi(disk.uuid));
    expect(before.length).toBe(await pool.control.vdiSize(disk.uuid));
    await pool.control.writeBytes(disk.uuid, 3 * MiB - 2, Buffer.from('spans two blocks'));
    const after = await readAll(await pool.control.readVdi(disk.uuid));
    expect(after.subarray(3 * MiB - 2, 3 * MiB + 14).toString()).toBe('spans two blocks');
    expect(after.subarray(0, 3 * MiB - 2).equals(before.subarray(0, 3 * MiB - 2))).toBe(true);
    const a = await pool.control.writeRandomBlocks(disk.uuid, { count: 2, seed: 'same' });
    const b = await pool.control.writeRandomBlocks(disk.uuid, { count: 2, seed: 'same' });
    expect(a).toEqual(b);
    expect(a).toHaveLength(2);
  });

  it('lists snapshots with their other_config, orphans flagged', async () => {
    const vm = await vmByName(url, s, 'dev-1');
    const clone = await rpc(url, 'VM.clone', s, vm, 'to-be-deleted');
    const snap = await rpc(url, 'VM.snapshot', s, clone, 'left behind');
    await rpc(url, 'VM.add_to_other_config', s, snap, 'xo:backup:job', 'job-1');
    await rpc(url, 'VM.destroy', s, clone);
    const list = await pool.control.snapshots();
    const mine = list.find((x) => x.ref === snap)!;
    expect(mine).toMatchObject({
      orphan: true,
      name_label: 'left behind',
      other_config: { 'xo:backup:job': 'job-1' },
    });
    expect(list.filter((x) => !x.orphan).every((x) => x.snapshot_of_uuid !== null)).toBe(true);
  });
});

describe('persistence', () => {
  it('state and disk bytes survive a restart with the same data dir', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'xcpb-sim-persist-'));
    try {
      const first = await startSimulator({ scenario: smallScenario('keep'), dataDir });
      const p = first.pool('keep');
      const sess = await login(p.url);
      const vm = await vmByName(p.url, sess, 'dev-1');
      await rpc(p.url, 'VM.add_tags', sess, vm, 'kept');
      const snap = await rpc(p.url, 'VM.snapshot', sess, vm, 'kept-snap');
      const vbd = (await rpc<string[]>(p.url, 'VM.get_VBDs', sess, vm))[0];
      const uuid = await rpc(p.url, 'VDI.get_uuid', sess, await rpc(p.url, 'VBD.get_VDI', sess, vbd));
      await p.control.writeBytes(uuid, 1000, Buffer.from('persisted bytes'));
      const unfinished = await rpc(p.url, 'task.create', sess, 'in flight at shutdown', '');
      const bytes = await readAll(await p.control.readVdi(uuid));
      const snapshotTime = await rpc(p.url, 'VM.get_snapshot_time', sess, snap);
      await first.close();

      const second = await startSimulator({ scenario: smallScenario('keep'), dataDir });
      try {
        const q = second.pool('keep');
        const s2 = await login(q.url);
        expect(await rpc(q.url, 'VM.get_tags', s2, vm)).toContain('kept');
        expect(await rpc(q.url, 'VM.get_name_label', s2, snap)).toBe('kept-snap');
        expect((await readAll(await q.control.readVdi(uuid))).equals(bytes)).toBe(true);
        expect(await rpc(q.url, 'task.get_status', s2, unfinished)).toBe('failure');
        // a date field is a date again (XAPI's format on the wire, not the ISO string saved)
        expect(await rpc(q.url, 'VM.get_snapshot_time', s2, snap)).toBe(snapshotTime);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('a state saved by version 1 (dates and floats as {"$date"} and {"$float"} objects) still loads', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'xcpb-sim-persist-v1-'));
    try {
      const first = await startSimulator({ scenario: smallScenario('old'), dataDir });
      const p = first.pool('old');
      const sess = await login(p.url);
      const snap = await rpc(p.url, 'VM.snapshot', sess, await vmByName(p.url, sess, 'dev-1'), 'old-snap');
      const snapshotTime = await rpc(p.url, 'VM.get_snapshot_time', sess, snap);
      // a float copied into the snapshot is still a float (not a `{value}` struct)
      expect(await rpc(p.url, 'VM.get_HVM_shadow_multiplier', sess, snap)).toBe(1);
      await first.close();
      // rewrite the saved state the way version 1 wrote it
      const file = join(dataDir, 'old', 'state.json');
      const state = JSON.parse(await readFile(file, 'utf8'));
      for (const [cls, rows] of Object.entries<Record<string, Record<string, unknown>>>(state.db.tables)) {
        const defaults = SCHEMAS[cls].defaults();
        for (const record of Object.values(rows))
          for (const [field, like] of Object.entries(defaults)) {
            if (like instanceof Date) record[field] = { $date: record[field] };
            else if (like instanceof XFloat) record[field] = { $float: record[field] };
          }
      }
      await writeFile(file, JSON.stringify({ ...state, version: 1 }));

      const second = await startSimulator({ scenario: smallScenario('old'), dataDir });
      try {
        const q = second.pool('old');
        const s2 = await login(q.url);
        expect(await rpc(q.url, 'VM.get_name_label', s2, snap)).toBe('old-snap');
        expect(await rpc(q.url, 'VM.get_snapshot_time', s2, snap)).toBe(snapshotTime);
        expect(await rpc(q.url, 'VM.get_HVM_shadow_multiplier', s2, snap)).toBe(1);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
