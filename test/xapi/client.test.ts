import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimPool, type Simulator, startSimulator } from '../../simulator/index';
import { connectXapi, isRetryable, type XapiClient, XapiError } from '../../xapi/index';
import { MiB, smallScenario } from '../simulator/fixtures';

let sim: Simulator;
let pool: SimPool;
let xapi: XapiClient;
beforeAll(async () => {
  sim = await startSimulator({ scenario: smallScenario() });
  pool = sim.pool('lab');
  xapi = await connectXapi({ url: pool.url, username: pool.username, password: pool.password });
});
afterAll(async () => {
  await xapi?.logout();
  await sim?.close();
});

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function vmNamed(name: string): Promise<[string, any]> {
  const vms = await xapi.getAllRecords<any>('VM');
  const hit = Object.entries(vms).find(([, r]) => r.name_label === name);
  if (!hit) throw new Error(`no VM ${name}`);
  return hit;
}

async function firstDisk(vm: string): Promise<{ ref: string; uuid: string; size: number }> {
  const rec = await xapi.getRecord<any>('VM', vm);
  for (const vbd of rec.VBDs) {
    const b = await xapi.getRecord<any>('VBD', vbd);
    if (b.type === 'Disk' && b.userdevice === '0') {
      const v = await xapi.getRecord<any>('VDI', b.VDI);
      return { ref: b.VDI, uuid: v.uuid, size: Number(v.virtual_size) };
    }
  }
  throw new Error('no disk');
}

describe('our XAPI client against the simulator', () => {
  it('lists VMs, snapshots through callAsync (task waited through event.from), reads records', async () => {
    const vms = await xapi.getAllRecords<any>('VM');
    const names = Object.values(vms)
      .filter((v) => !v.is_control_domain && !v.is_a_snapshot)
      .map((v) => v.name_label)
      .sort();
    expect(names).toEqual(['dev-1', 'prod-1', 'tmpl']);
    const [prod] = await vmNamed('prod-1');
    const snap = await xapi.callAsync<string>('VM.snapshot', prod, 'ours');
    expect(snap).toMatch(/^OpaqueRef:/);
    const rec = await xapi.getRecord<any>('VM', snap);
    expect(rec).toMatchObject({ is_a_snapshot: true, snapshot_of: prod, name_label: 'ours' });
    // ints arrive as decimal strings over XML-RPC, dates as Date
    expect(typeof rec.memory_static_max).toBe('string');
    expect(rec.snapshot_time).toBeInstanceOf(Date);
  });

  it("sees a snapshot and its task's completion through its event stream", async () => {
    const [dev] = await vmNamed('dev-1');
    const stop = new AbortController();
    let started: Promise<string> | undefined;
    let snapRef: string | undefined;
    let sawTask = false;
    for await (const ev of xapi.events(['VM', 'task'], { signal: stop.signal, pollSeconds: 1 })) {
      if (!started) {
        // the initial state is being delivered: start the snapshot, its result is not awaited here
        started = xapi.call<string>('Async.VM.snapshot', dev, 'watched');
        continue;
      }
      const task = await started;
      if (ev.class === 'vm' && ev.operation === 'add' && (ev.snapshot as any)?.snapshot_of === dev)
        snapRef = ev.ref;
      if (ev.class === 'task' && ev.ref === task && (ev.snapshot as any)?.status === 'success')
        sawTask = true;
      if (snapRef && sawTask) stop.abort();
    }
    expect(snapRef).toMatch(/^OpaqueRef:/);
    expect((await xapi.getRecord<any>('VM', snapRef!)).name_label).toBe('watched');
  });

  it('errors are XapiError with code and params, sync and async', async () => {
    const [prod] = await vmNamed('prod-1');
    const sync = await xapi.call('VM.start', prod, false, false).catch((e) => e);
    expect(sync).toBeInstanceOf(XapiError);
    expect(sync).toMatchObject({ code: 'VM_BAD_POWER_STATE', params: [prod, 'halted', 'running'] });
    const async = await xapi.callAsync('VM.start', prod, false, false).catch((e) => e);
    expect(async).toMatchObject({ code: 'VM_BAD_POWER_STATE', params: [prod, 'halted', 'running'] });
    const login = await connectXapi({ url: pool.url, username: 'root', password: 'nope' }).catch((e) => e);
    expect(login).toMatchObject({
      code: 'SESSION_AUTHENTICATION_FAILED',
      params: ['root', 'Authentication failure'],
    });
  });

  it('logs in again when its session became invalid', async () => {
    const other = await connectXapi({ url: pool.url, username: pool.username, password: pool.password });
    const old = other.sessionId;
    await xapi.call('session.logout').catch(() => {});
    // the shared client's session is gone: its next call re-logs in transparently
    expect((await xapi.call<string[]>('VM.get_all')).length).toBeGreaterThan(0);
    expect(xapi.sessionId).not.toBe(old);
    await other.logout();
  });

  it('exports with getResource and imports with putResource (known size and unknown size)', async () => {
    const [dev] = await vmNamed('dev-1');
    const disk = await firstDisk(dev);
    const { body, taskRef } = await xapi.getResource('/export_raw_vdi/', { vdi: disk.ref, format: 'raw' });
    const bytes = await readAll(body);
    expect(await xapi.waitTask(taskRef)).toBe('');
    expect(bytes.equals(await readAll(await pool.control.readVdi(disk.uuid)))).toBe(true);

    const sr = (await xapi.getRecord<any>('VDI', disk.ref)).SR;
    for (const size of [bytes.length, undefined]) {
      const target = await xapi.call<string>('VDI.create', {
        SR: sr,
        virtual_size: String(disk.size),
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      });
      const out = await xapi.putResource(
        '/import_raw_vdi/',
        { vdi: target, format: 'raw' },
        Readable.from([bytes]),
        { size },
      );
      expect(out.result).toBe(target);
      const uuid = await xapi.call<string>('VDI.get_uuid', target);
      expect((await readAll(await pool.control.readVdi(uuid))).equals(bytes)).toBe(true);
    }
  });

  it('round-trips an XVA: /export of a snapshot, /import into an SR gives [vm]', async () => {
    const [dev] = await vmNamed('dev-1');
    const snap = await xapi.callAsync<string>('VM.snapshot', dev, 'for-xva');
    const { body, taskRef } = await xapi.getResource('/export/', { ref: snap, use_compression: 'zstd' });
    const imported = await xapi.putResource('/import/', {}, body);
    await xapi.waitTask(taskRef);
    expect(imported.value).toEqual([imported.result]);
    const vm = await xapi.getRecord<any>('VM', imported.result);
    expect(vm.name_label).toBe('for-xva');
    const a = await firstDisk(snap);
    const b = await firstDisk(imported.result);
    expect(
      (await readAll(await pool.control.readVdi(b.uuid))).equals(
        await readAll(await pool.control.readVdi(a.uuid)),
      ),
    ).toBe(true);
  });

  it("a transfer's failure comes back as the task's XapiError", async () => {
    const err = await xapi.getResource('/export_raw_vdi/', { vdi: 'OpaqueRef:missing' }).catch((e) => e);
    expect(err).toMatchObject({ code: 'HANDLE_INVALID', params: ['VDI', 'OpaqueRef:missing'] });
  });

  it('cancels a running export task', async () => {
    const [dev] = await vmNamed('dev-1');
    const disk = await firstDisk(dev);
    await pool.control.throttle({ bytesPerSecond: 2 * MiB });
    try {
      const { body, taskRef } = await xapi.getResource('/export_raw_vdi/', { vdi: disk.ref });
      const consumed = readAll(body).catch((e) => e);
      await xapi.cancelTask(taskRef);
      await expect(xapi.waitTask(taskRef)).rejects.toMatchObject({
        code: 'TASK_CANCELLED',
        params: [taskRef],
      });
      const got = await consumed;
      expect(got instanceof Error || (got as Buffer).length < disk.size).toBe(true);
    } finally {
      await pool.control.throttle({ bytesPerSecond: 0 });
    }
  });
});

describe('transient network failures', () => {
  let proxy: TcpServer;
  let resets = 0;
  beforeAll(async () => {
    const target = new URL(pool.url);
    // forwards to the simulator, but resets the connection carrying the next `resets` requests
    proxy = createTcpServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      client.on('data', (chunk) => {
        if (resets > 0) {
          resets--;
          upstream.destroy();
          client.resetAndDestroy();
          return;
        }
        upstream.write(chunk);
      });
      upstream.pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(() => new Promise<void>((r) => proxy.close(() => r())));

  it('retries read-only calls after a reset, not calls that change state', async () => {
    const port = (proxy.address() as any).port;
    const c = await connectXapi({
      url: `http://127.0.0.1:${port}`,
      username: pool.username,
      password: pool.password,
    });
    resets = 2;
    expect((await c.call<string[]>('VM.get_all')).length).toBeGreaterThan(0);
    const [dev] = await vmNamed('dev-1');
    resets = 1;
    const err = await c.call('VM.clone', dev, 'maybe-twice').catch((e) => e);
    expect(err).toMatchObject({ name: 'XapiTransportError', code: 'ECONNRESET' });
    expect(isRetryable({ code: 'ECONNREFUSED' }, false)).toBe(true);
    expect(isRetryable({ code: 'ECONNRESET' }, false)).toBe(false);
    expect(isRetryable(new XapiError('SR_FULL'), true)).toBe(false);
    await c.logout();
  });
});

describe('TLS', () => {
  let dir: string;
  let server: HttpsServer;
  let url: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'xcpb-tls-'));
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    const target = new URL(pool.url);
    // a TLS front for the simulator, with a self-signed certificate, as a fresh XCP-ng host has
    server = createHttpsServer(
      { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) },
      (req, res) => {
        const up = httpRequest(
          {
            host: target.hostname,
            port: target.port,
            path: req.url,
            method: req.method,
            headers: req.headers,
          },
          (r) => {
            res.writeHead(r.statusCode!, r.headers);
            r.pipe(res);
          },
        );
        req.pipe(up);
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `https://127.0.0.1:${(server.address() as any).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies certificates by default and accepts a self-signed one only when told to', async () => {
    const refused = await connectXapi({ url, username: pool.username, password: pool.password }).catch(
      (e) => e,
    );
    expect(refused).toMatchObject({ name: 'XapiTransportError', code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    const c = await connectXapi({
      url,
      username: pool.username,
      password: pool.password,
      allowUnauthorized: true,
    });
    const [dev] = await vmNamed('dev-1');
    const disk = await firstDisk(dev);
    const { body } = await c.getResource('/export_raw_vdi/', { vdi: disk.ref });
    expect((await readAll(body)).length).toBe(disk.size);
    await c.logout();
  });
});
