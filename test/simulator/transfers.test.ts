import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readVhdStream } from '../../formats/vhd';
import { type SimPool, type Simulator, startSimulator } from '../../simulator/index';
import { judgeChain } from '../tools/vhd-chain-judge';
import { MiB, smallScenario } from './fixtures';
import { login, rpc, vmByName, waitTask } from './rpc-helpers';

let sim: Simulator;
let pool: SimPool;
let url: string;
let s: string;
let dir: string;
beforeAll(async () => {
  sim = await startSimulator({ scenario: smallScenario() });
  pool = sim.pool('lab');
  url = pool.url;
  s = await login(url);
  dir = await mkdtemp(join(tmpdir(), 'xcpb-sim-test-'));
});
afterAll(async () => {
  await sim?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function download(path: string, query: Record<string, string>, file?: string) {
  const u = new URL(path, url);
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  const res = await fetch(u);
  const headers = Object.fromEntries(res.headers);
  if (file && res.ok && res.body) {
    await pipeline(Readable.fromWeb(res.body as any), createWriteStream(file));
    return { status: res.status, headers, body: Buffer.alloc(0) };
  }
  return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) };
}

function put(
  path: string,
  query: Record<string, string>,
  body: Buffer,
  headers: Record<string, string | number> = {},
) {
  const u = new URL(path, url);
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  return new Promise<{ status: number; headers: Record<string, any> }>((resolve, reject) => {
    const req = request(
      u,
      { method: 'PUT', headers: { 'content-length': body.length, ...headers } },
      (res) => {
        res.resume();
        // a failed import closes the connection after the 200 headers: 'close' without 'end'
        res.on('close', () => resolve({ status: res.statusCode!, headers: res.headers }));
        res.on('error', () => {});
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function firstDisk(vm: string): Promise<{ ref: string; uuid: string }> {
  for (const vbd of await rpc<string[]>(url, 'VM.get_VBDs', s, vm)) {
    const r = await rpc(url, 'VBD.get_record', s, vbd);
    if (r.type === 'Disk' && r.userdevice === '0')
      return { ref: r.VDI, uuid: await rpc(url, 'VDI.get_uuid', s, r.VDI) };
  }
  throw new Error('no disk');
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('GET /export_raw_vdi', () => {
  it('full and delta VHDs read by qemu-img rebuild the disk at both snapshots; raw exports match', async () => {
    const vm = await vmByName(url, s, 'prod-1');
    const snap1 = await rpc(url, 'VM.snapshot', s, vm, 'base');
    const d1 = await firstDisk(snap1);
    const disk = await firstDisk(vm);
    const written = await pool.control.writeRandomBlocks(disk.uuid, { count: 2, seed: 'between' });
    await pool.control.writeBytes(disk.uuid, 5 * MiB + 12345, Buffer.from('guest wrote this'));
    const snap2 = await rpc(url, 'VM.snapshot', s, vm, 'next');
    const d2 = await firstDisk(snap2);

    const full = join(dir, 'full.vhd');
    const delta = join(dir, 'delta.vhd');
    const r1 = await download('/export_raw_vdi/', { session_id: s, vdi: d1.ref, format: 'vhd' }, full);
    expect(r1.status).toBe(200);
    expect(r1.headers['content-type']).toBe('application/vhd');
    expect(r1.headers['content-length']).toBeUndefined();
    expect(r1.headers['transfer-encoding']).toBeUndefined();
    expect(r1.headers['task-id']).toMatch(/^OpaqueRef:/);
    await download('/export_raw_vdi', { session_id: s, vdi: d2.uuid, format: 'vhd', base: d1.ref }, delta);

    // the delta holds only the blocks changed between the snapshots
    const blocks: number[] = [];
    let diskType = 0;
    for await (const item of readVhdStream((await import('node:fs')).createReadStream(delta))) {
      if (item.type === 'header') diskType = item.footer.diskType;
      else blocks.push(item.index);
    }
    expect(diskType).toBe(4);
    expect(blocks).toEqual([...new Set([...written, 2])].sort((a, b) => a - b));

    const at1 = await readAll(await pool.control.readVdi(d1.uuid));
    const at2 = await readAll(await pool.control.readVdi(d2.uuid));
    expect(at1.equals(at2)).toBe(false);
    await judgeChain(join(dir, 'one.raw'), [full]);
    await judgeChain(join(dir, 'two.raw'), [full, delta]);
    expect(sha(await readFile(join(dir, 'one.raw')))).toBe(sha(at1));
    expect(sha(await readFile(join(dir, 'two.raw')))).toBe(sha(at2));

    const raw1 = await download('/export_raw_vdi', { session_id: s, vdi: d1.ref, format: 'raw' });
    const raw2 = await download('/export_raw_vdi', { session_id: s, vdi: d2.ref });
    expect(raw1.headers['content-type']).toBe('application/octet-stream');
    expect(sha(raw1.body)).toBe(sha(at1));
    expect(sha(raw2.body)).toBe(sha(at2));
  });

  it('a disk whose size is not a multiple of 2 MiB exports as a VHD qemu-img reads at its exact size', async () => {
    const vm = await vmByName(url, s, 'prod-1');
    let second: { ref: string; uuid: string } | undefined;
    for (const vbd of await rpc<string[]>(url, 'VM.get_VBDs', s, vm)) {
      const r = await rpc(url, 'VBD.get_record', s, vbd);
      if (r.userdevice === '1') second = { ref: r.VDI, uuid: await rpc(url, 'VDI.get_uuid', s, r.VDI) };
    }
    const file = join(dir, 'odd.vhd');
    await download('/export_raw_vdi', { session_id: s, vdi: second!.ref, format: 'vhd' }, file);
    await judgeChain(join(dir, 'odd.raw'), [file]);
    const rebuilt = await readFile(join(dir, 'odd.raw'));
    expect(rebuilt.length).toBe(9 * MiB);
    expect(sha(rebuilt)).toBe(sha(await readAll(await pool.control.readVdi(second!.uuid))));
  });

  it('a delta export reads only the changed blocks, however large the disk', async () => {
    const sr = Object.values<any>(await rpc(url, 'pool.get_all_records', s))[0].default_SR;
    const vdi = await rpc(url, 'VDI.create', s, {
      SR: sr,
      virtual_size: 64 * MiB,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    });
    const uuid = await rpc(url, 'VDI.get_uuid', s, vdi);
    await pool.control.writeRandomBlocks(uuid, { count: 32, seed: 'full disk' });
    const base = await rpc(url, 'VDI.snapshot', s, vdi, {});
    const changed = await pool.control.writeRandomBlocks(uuid, { count: 2, seed: 'two blocks' });
    const next = await rpc(url, 'VDI.snapshot', s, vdi, {});
    await pool.control.resetStats();
    const delta = await download('/export_raw_vdi', { session_id: s, vdi: next, base, format: 'vhd' });
    expect(delta.status).toBe(200);
    expect((await pool.control.stats()).blocksRead).toBe(changed.length);
    await pool.control.resetStats();
    await download('/export_raw_vdi', { session_id: s, vdi: next, format: 'vhd' });
    expect((await pool.control.stats()).blocksRead).toBe(32);
  });

  it('adopts the task given as task_id and completes it', async () => {
    const disk = await firstDisk(await vmByName(url, s, 'dev-1'));
    const task = await rpc(url, 'task.create', s, 'my export', '');
    const r = await download('/export_raw_vdi', { session_id: s, task_id: task, vdi: disk.ref });
    expect(r.status).toBe(200);
    expect(r.headers['task-id']).toBe(task);
    const rec = await waitTask(url, s, task);
    expect(rec.status).toBe('success');
  });

  it('answers bad requests as XAPI does: 401 without session, 400 without vdi, 404 for an unknown format or VDI', async () => {
    const disk = await firstDisk(await vmByName(url, s, 'dev-1'));
    const noSession = await download('/export_raw_vdi', { vdi: disk.ref });
    expect(noSession.status).toBe(401);
    expect(noSession.headers['www-authenticate']).toMatch(/^Basic realm=/);
    const task = await rpc(url, 'task.create', s, 'will fail', '');
    const noVdi = await download('/export_raw_vdi', { session_id: s, task_id: task });
    expect(noVdi.status).toBe(400);
    expect(noVdi.body.toString()).toContain('missing query parameter: vdi');
    expect((await rpc(url, 'task.get_error_info', s, task))[0]).toBe('INTERNAL_ERROR');
    const fmt = await download('/export_raw_vdi', { session_id: s, vdi: disk.ref, format: 'qcow3' });
    expect(fmt.status).toBe(404);
    const unknown = await download('/export_raw_vdi', { session_id: s, vdi: 'OpaqueRef:none' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.toString()).toContain('HANDLE_INVALID VDI OpaqueRef:none');
    // Basic auth works like a session
    const basic = await fetch(`${url}/export_raw_vdi?vdi=${disk.ref}`, {
      headers: { authorization: `Basic ${Buffer.from('root:secret').toString('base64')}` },
    });
    expect(basic.status).toBe(200);
    expect((await basic.arrayBuffer()).byteLength).toBe(8 * MiB);
  });
});

describe('PUT /import_raw_vdi', () => {
  it('answers the empty probe, imports raw, then applies a differencing VHD as a delta', async () => {
    const sr = Object.values<any>(await rpc(url, 'pool.get_all_records', s))[0].default_SR;
    const target = await rpc(url, 'VDI.create', s, {
      SR: sr,
      virtual_size: 16 * MiB,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    });
    const targetUuid = await rpc(url, 'VDI.get_uuid', s, target);
    const probe = await put(
      '/import_raw_vdi/',
      { session_id: s, vdi: target, format: 'raw' },
      Buffer.alloc(0),
    );
    expect(probe.status).toBe(200);

    const vm = await vmByName(url, s, 'prod-1');
    const src = await firstDisk(vm);
    const base = await rpc(url, 'VDI.snapshot', s, src.ref, {});
    const baseRaw = (await download('/export_raw_vdi', { session_id: s, vdi: base })).body;
    const task = await rpc(url, 'task.create', s, 'import', '');
    const r = await put(
      '/import_raw_vdi',
      { session_id: s, task_id: task, vdi: targetUuid, format: 'raw' },
      baseRaw,
    );
    expect(r.status).toBe(200);
    expect(r.headers['task-id']).toBe(task);
    const rec = await waitTask(url, s, task);
    expect(rec.status).toBe('success');
    expect(rec.result).toBe(`<value>${target}</value>`);
    expect(sha(await readAll(await pool.control.readVdi(targetUuid)))).toBe(sha(baseRaw));

    await pool.control.writeRandomBlocks(src.uuid, { count: 3, seed: 77 });
    const next = await rpc(url, 'VDI.snapshot', s, src.ref, {});
    const delta = (await download('/export_raw_vdi', { session_id: s, vdi: next, base, format: 'vhd' })).body;
    const t2 = await rpc(url, 'task.create', s, 'import delta', '');
    await put('/import_raw_vdi', { session_id: s, task_id: t2, vdi: target, format: 'vhd' }, delta);
    expect((await waitTask(url, s, t2)).status).toBe('success');
    const nextUuid = await rpc(url, 'VDI.get_uuid', s, next);
    expect(sha(await readAll(await pool.control.readVdi(targetUuid)))).toBe(
      sha(await readAll(await pool.control.readVdi(nextUuid))),
    );
  });
});

describe('XVA: GET /export and PUT /import', () => {
  it.each(['false', 'true', 'zstd'])(
    'a snapshot exported (use_compression=%s) and imported back has the same disks',
    async (compression) => {
      const vm = await vmByName(url, s, 'prod-1');
      const snap = await rpc(url, 'VM.snapshot', s, vm, `xva-${compression}`);
      const file = join(dir, `vm-${compression}.xva`);
      const r = await download('/export/', { session_id: s, ref: snap, use_compression: compression }, file);
      expect(r.status).toBe(200);
      expect(r.headers['content-disposition']).toBe('attachment; filename="export.xva"');
      const bytes = await readFile(file);
      if (compression === 'true') expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
      if (compression === 'zstd') expect(bytes.subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
      const srs = await rpc(url, 'SR.get_all_records', s);
      const second = Object.entries<any>(srs).find(([, x]) => x.name_label === 'Second SR')![0];
      const task = await rpc(url, 'task.create', s, 'import xva', '');
      const imp = await put('/import/', { session_id: s, task_id: task, sr_id: second }, bytes);
      expect(imp.status).toBe(200);
      const rec = await waitTask(url, s, task);
      expect(rec.status).toBe('success');
      const newVm = /OpaqueRef:[0-9a-f-]{36}/.exec(rec.result)![0];
      expect(rec.result).toBe(`<value><array><data><value>${newVm}</value></data></array></value>`);
      const imported = await rpc(url, 'VM.get_record', s, newVm);
      expect(imported).toMatchObject({
        name_label: `xva-${compression}`,
        power_state: 'Halted',
        is_a_snapshot: false,
        current_operations: {},
      });
      const disksOf = async (v: string) => {
        const out: { device: string; bytes: string; size: number }[] = [];
        for (const vbd of await rpc<string[]>(url, 'VM.get_VBDs', s, v)) {
          const b = await rpc(url, 'VBD.get_record', s, vbd);
          if (b.type !== 'Disk') continue;
          const vdi = await rpc(url, 'VDI.get_record', s, b.VDI);
          out.push({
            device: b.userdevice,
            size: vdi.virtual_size,
            bytes: sha(await readAll(await pool.control.readVdi(vdi.uuid))),
          });
        }
        return out.sort((a, b) => a.device.localeCompare(b.device));
      };
      const a = await disksOf(snap);
      const b = await disksOf(newVm);
      expect(b).toEqual(a);
      expect(a).toHaveLength(2);
      for (const vbd of await rpc<string[]>(url, 'VM.get_VBDs', s, newVm)) {
        expect(
          await rpc(
            url,
            'SR.get_name_label',
            s,
            await rpc(url, 'VDI.get_SR', s, await rpc(url, 'VBD.get_VDI', s, vbd)),
          ),
        ).toBe('Second SR');
      }
    },
  );

  it('a zstd export (zstd writing to the socket itself, as on a host) cancelled mid-way: the task is cancelled, the download ends, no zstd is left', async () => {
    const vm = await vmByName(url, s, 'prod-1');
    const snap = await rpc(url, 'VM.snapshot', s, vm, 'xva-cancel');
    const task = await rpc(url, 'task.create', s, 'export to cancel', '');
    const u = new URL('/export', url);
    for (const [k, v] of Object.entries({ session_id: s, ref: snap, task_id: task, use_compression: 'zstd' }))
      u.searchParams.set(k, v);
    // read the first bytes, then stop reading: the export waits on the client
    const { res, first } = await new Promise<{ res: import('node:http').IncomingMessage; first: Buffer }>(
      (resolve, reject) => {
        request(u, (r) => {
          r.once('data', (c: Buffer) => {
            r.pause();
            resolve({ res: r, first: c });
          });
        })
          .on('error', reject)
          .end();
      },
    );
    expect(res.statusCode).toBe(200);
    expect([...first.subarray(0, 4)]).toEqual([0x28, 0xb5, 0x2f, 0xfd]);
    const ended = new Promise<void>((resolve) => {
      res.once('close', () => resolve());
      res.once('error', () => resolve());
      res.resume();
    });
    await rpc(url, 'task.cancel', s, task);
    await ended;
    const rec = await waitTask(url, s, task);
    expect(rec.status).toBe('cancelled');
    expect(await rpc(url, 'VM.get_current_operations', s, snap)).toEqual({});
    const { execFileSync } = await import('node:child_process');
    const children = execFileSync('ps', ['--ppid', String(process.pid), '-o', 'comm='], { encoding: 'utf8' });
    expect(children.split('\n').filter((c) => c.trim() === 'zstd')).toEqual([]);
  });

  it('refuses to export a running VM (VM_BAD_POWER_STATE) and a chunked import', async () => {
    const vm = await vmByName(url, s, 'prod-1');
    const task = await rpc(url, 'task.create', s, 'export running', '');
    const r = await download('/export', { session_id: s, task_id: task, ref: vm });
    expect(r.status).toBe(500);
    expect(await rpc(url, 'task.get_error_info', s, task)).toEqual([
      'VM_BAD_POWER_STATE',
      vm,
      'halted, suspended',
      'running',
    ]);
    const t2 = await rpc(url, 'task.create', s, 'chunked', '');
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${url}/import?session_id=${s}&task_id=${t2}`,
        { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', reject);
      req.end('abc');
    });
    expect(chunked).toBe(403);
    expect(await rpc(url, 'task.get_error_info', s, t2)).toEqual(['IMPORT_ERROR_CANNOT_HANDLE_CHUNKED']);
  });
});

describe('garbage uploads', () => {
  it('a body that is not an XVA fails the import task, creates nothing, and the server keeps serving', async () => {
    const before = (await rpc<string[]>(url, 'VM.get_all', s)).length;
    const vdisBefore = (await rpc<string[]>(url, 'VDI.get_all', s)).length;
    const task = await rpc(url, 'task.create', s, 'garbage', '');
    const r = await put('/import', { session_id: s, task_id: task }, Buffer.alloc(4096, 0x41));
    expect(r.status).toBe(200);
    const rec = await waitTask(url, s, task);
    expect(rec.status).toBe('failure');
    expect(rec.error_info[0]).toMatch(/^IMPORT_ERROR/);
    expect((await rpc<string[]>(url, 'VM.get_all', s)).length).toBe(before);
    expect((await rpc<string[]>(url, 'VDI.get_all', s)).length).toBe(vdisBefore);
  });

  it('a body that is not a VHD fails the import_raw_vdi task with VDI_IO_ERROR', async () => {
    const disk = await firstDisk(await vmByName(url, s, 'dev-1'));
    const task = await rpc(url, 'task.create', s, 'bad vhd', '');
    await put(
      '/import_raw_vdi',
      { session_id: s, task_id: task, vdi: disk.ref, format: 'vhd' },
      Buffer.alloc(2048, 7),
    );
    const rec = await waitTask(url, s, task);
    expect(rec.status).toBe('failure');
    expect(rec.error_info[0]).toBe('VDI_IO_ERROR');
    expect(await rpc(url, 'VDI.get_name_label', s, disk.ref)).toBeTypeOf('string');
  });
});
