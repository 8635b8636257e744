import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulator, startSimulator } from '../../simulator/index';
import { smallScenario } from './fixtures';
import { failureOf, jsonCall, login, postRaw, rpc, str, vmByName, waitTask, xmlCall } from './rpc-helpers';

let sim: Simulator;
let url: string;
let session: string;
beforeAll(async () => {
  sim = await startSimulator({ scenario: smallScenario() });
  url = sim.pool('lab').url;
  session = await login(url);
});
afterAll(() => sim?.close());

describe('XML-RPC', () => {
  it.each(['/', '/RPC2', '/xmlrpc'])(
    'answers on %s with text/xml, compact XML and the Status/Value wrapping',
    async (path) => {
      const r = await postRaw(
        url,
        path,
        xmlCall('session.login_with_password', [str('root'), str('secret')]),
      );
      expect(r.status).toBe(200);
      expect(r.type).toBe('text/xml');
      expect(r.text).toMatch(
        /^<\?xml version="1.0"\?><methodResponse><params><param><value><struct><member><name>Status<\/name><value>Success<\/value><\/member><member><name>Value<\/name><value>OpaqueRef:[0-9a-f-]{36}<\/value><\/member><\/struct><\/value><\/param><\/params><\/methodResponse>$/,
      );
      expect(r.text).not.toMatch(/>\s+</);
    },
  );

  it('encodes ints as bare strings, bools as <boolean>, dates as YYYYMMDDTHH:MM:SSZ, floats as <double>', async () => {
    const vdis = await rpc(url, 'VDI.get_all', session);
    const r = await postRaw(url, '/', xmlCall('VDI.get_record', [str(session), str(vdis[0])]));
    expect(r.text).toMatch(/<name>virtual_size<\/name><value>\d+<\/value>/);
    expect(r.text).toMatch(/<name>sharable<\/name><value><boolean>0<\/boolean><\/value>/);
    expect(r.text).toMatch(
      /<name>snapshot_time<\/name><value><dateTime.iso8601>19700101T00:00:00Z<\/dateTime.iso8601><\/value>/,
    );
    const task = await rpc(url, 'task.create', session, 'x', '');
    const t = await postRaw(url, '/', xmlCall('task.get_progress', [str(session), str(task)]));
    expect(t.text).toContain('<value><double>0</double></value>');
  });

  it('reports failures as Status=Failure with ErrorDescription, never a <fault>', async () => {
    const r = await postRaw(url, '/', xmlCall('VM.get_record', [str(session), str('OpaqueRef:nope')]));
    expect(r.text).toBe(
      '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>HANDLE_INVALID</value><value>VM</value><value>OpaqueRef:nope</value></data></array></value></member></struct></value></param></params></methodResponse>',
    );
  });

  it('answers system.listMethods without a session, unwrapped, listing every get_all_records', async () => {
    const r = await postRaw(url, '/xmlrpc', xmlCall('system.listMethods', []));
    expect(
      r.text.startsWith('<?xml version="1.0"?><methodResponse><params><param><value><array><data>'),
    ).toBe(true);
    for (const m of [
      'VM.get_all_records',
      'VDI.get_all_records',
      'task.get_all_records',
      'pool.get_all_records',
      'VM.snapshot',
    ]) {
      expect(r.text).toContain(`<value>${m}</value>`);
    }
  });

  it('accepts typed params (<string>, <int>, <i8>, <double>) like XAPI', async () => {
    const r = await postRaw(
      url,
      '/',
      xmlCall('event.from', [
        `<value><string>${session}</string></value>`,
        '<value><array><data><value>pool</value></data></array></value>',
        '<value></value>',
        '<value><int>1</int></value>',
      ]),
    );
    expect(r.text).toContain('<name>Status</name><value>Success</value>');
    expect(r.text).toMatch(/<name>pool<\/name><value><i4>1<\/i4><\/value>/);
  });

  it('answers malformed XML with HTTP 500 and an HTML page naming the problem, and keeps serving', async () => {
    const r = await postRaw(url, '/', '<methodCall><methodName>VM.get_all');
    expect(r.status).toBe(500);
    expect(r.type).toBe('text/html');
    expect(r.text).toContain('malformed XML-RPC call');
    expect(await rpc(url, 'VM.get_all', session)).toHaveLength(4);
  });
});

describe('JSON-RPC', () => {
  it('speaks 2.0 with application/json exactly, echoing the id', async () => {
    const r = await postRaw(
      url,
      '/jsonrpc',
      JSON.stringify({
        jsonrpc: '2.0',
        id: 'abc',
        method: 'session.login_with_password',
        params: ['root', 'secret'],
      }),
    );
    expect(r.type).toBe('application/json');
    const a = JSON.parse(r.text);
    expect(a).toEqual({ jsonrpc: '2.0', result: expect.stringMatching(/^OpaqueRef:/), id: 'abc' });
  });

  it('speaks 1.0: {result, error: null, id} and {result: null, error: [code, ...params]}', async () => {
    expect(await jsonCall(url, 'VM.get_all', [session], 1)).toEqual({
      result: expect.any(Array),
      error: null,
      id: 7,
    });
    expect(await jsonCall(url, 'VM.get_record', [session, 'OpaqueRef:x'], 1)).toEqual({
      result: null,
      error: ['HANDLE_INVALID', 'VM', 'OpaqueRef:x'],
      id: 7,
    });
  });

  it('v2 errors: {code: 1, message: CODE, data: params}', async () => {
    expect(await jsonCall(url, 'VM.get_record', [session, 'OpaqueRef:x'])).toEqual({
      jsonrpc: '2.0',
      error: { code: 1, message: 'HANDLE_INVALID', data: ['VM', 'OpaqueRef:x'] },
      id: 7,
    });
  });

  it('encodes ints as numbers and dates as XAPI strings', async () => {
    const vdis = await rpc(url, 'VDI.get_all_records', session);
    const v: any = Object.values(vdis)[0];
    expect(typeof v.virtual_size).toBe('number');
    expect(v.snapshot_time).toBe('19700101T00:00:00Z');
  });

  it('answers a malformed body with HTTP 500', async () => {
    const r = await postRaw(url, '/jsonrpc', '{"method": ');
    expect(r.status).toBe(500);
    expect(r.text).toContain('malformed JSON-RPC request');
  });

  it('sessions work across transports', async () => {
    const r = await postRaw(url, '/', xmlCall('session.login_with_password', [str('root'), str('secret')]));
    const s = /OpaqueRef:[0-9a-f-]{36}/.exec(r.text)![0];
    expect(await rpc(url, 'pool.get_all', s)).toHaveLength(1);
  });
});

describe('dispatch errors with XAPI parameters', () => {
  it('login takes 2 to 4 params; wrong credentials → SESSION_AUTHENTICATION_FAILED [user, msg]', async () => {
    expect(await rpc(url, 'session.login_with_password', 'root', 'secret', '1.1')).toMatch(/^OpaqueRef:/);
    expect(await rpc(url, 'session.login_with_password', 'root', 'secret', '1.1', 'test')).toMatch(
      /^OpaqueRef:/,
    );
    expect(await failureOf(url, 'session.login_with_password', 'root')).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      'session.login_with_password',
      '2',
      '1',
    ]);
    expect(await failureOf(url, 'session.login_with_password', 'root', 'wrong')).toEqual([
      'SESSION_AUTHENTICATION_FAILED',
      'root',
      'Authentication failure',
    ]);
  });

  it('SESSION_INVALID [ref] for a bad session and after logout', async () => {
    expect(await failureOf(url, 'VM.get_all', 'OpaqueRef:bogus')).toEqual([
      'SESSION_INVALID',
      'OpaqueRef:bogus',
    ]);
    const s = await login(url);
    expect(await rpc(url, 'session.logout', s)).toBe('');
    expect(await failureOf(url, 'VM.get_all', s)).toEqual(['SESSION_INVALID', s]);
  });

  it('MESSAGE_METHOD_UNKNOWN [method]', async () => {
    expect(await failureOf(url, 'VM.frobnicate', session)).toEqual([
      'MESSAGE_METHOD_UNKNOWN',
      'VM.frobnicate',
    ]);
  });

  it('MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, received] (session excluded)', async () => {
    expect(await failureOf(url, 'VM.get_record', session)).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      'VM.get_record',
      '1',
      '0',
    ]);
    expect(await failureOf(url, 'VM.snapshot', session, 'a', 'b', [], 'extra')).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      'VM.snapshot',
      '2',
      '4',
    ]);
  });

  it('HANDLE_INVALID [class, ref] and UUID_INVALID [class, uuid]', async () => {
    expect(await failureOf(url, 'VDI.get_virtual_size', session, 'OpaqueRef:none')).toEqual([
      'HANDLE_INVALID',
      'VDI',
      'OpaqueRef:none',
    ]);
    const uuid = '00000000-0000-4000-8000-000000000000';
    expect(await failureOf(url, 'VM.get_by_uuid', session, uuid)).toEqual(['UUID_INVALID', 'VM', uuid]);
  });

  it('MESSAGE_REMOVED for VM.snapshot_with_quiesce, after the session check', async () => {
    const vm = await vmByName(url, session, 'prod-1');
    expect(await failureOf(url, 'VM.snapshot_with_quiesce', 'OpaqueRef:bad', vm, 'q')).toEqual([
      'SESSION_INVALID',
      'OpaqueRef:bad',
    ]);
    expect(await failureOf(url, 'VM.snapshot_with_quiesce', session, vm, 'q')).toEqual(['MESSAGE_REMOVED']);
  });

  it('Async on a message without async mode is refused', async () => {
    expect(await failureOf(url, 'Async.VM.get_record', session, 'x')).toEqual([
      'Fault',
      'No async mode for this operation (rpc: VM.get_record)',
    ]);
  });
});

describe('tasks and events', () => {
  it('Async.* returns a pending task completed with an XML-serialised result', async () => {
    const vm = await vmByName(url, session, 'dev-1');
    const task = await rpc(url, 'Async.VM.clone', session, vm, 'clone-1');
    expect(task).toMatch(/^OpaqueRef:/);
    const rec = await waitTask(url, session, task);
    expect(rec.status).toBe('success');
    expect(rec.name_label).toBe('Async.VM.clone');
    expect(rec.progress).toBe(1);
    expect(rec.result).toMatch(/^<value>OpaqueRef:[0-9a-f-]{36}<\/value>$/);
    const clone = /OpaqueRef:[0-9a-f-]{36}/.exec(rec.result)![0];
    expect(await rpc(url, 'VM.get_name_label', session, clone)).toBe('clone-1');
    expect(await rpc(url, 'task.destroy', session, task)).toBe('');
    expect(await failureOf(url, 'task.get_status', session, task)).toEqual(['HANDLE_INVALID', 'task', task]);
  });

  it('a failing Async call fails its task with error_info', async () => {
    const vm = await vmByName(url, session, 'prod-1');
    const task = await rpc(url, 'Async.VM.start', session, vm, false, false);
    const rec = await waitTask(url, session, task);
    expect(rec.status).toBe('failure');
    expect(rec.error_info).toEqual(['VM_BAD_POWER_STATE', vm, 'halted', 'running']);
  });

  it('event.from: "" gives every object as add; a token then blocks until a change, per class', async () => {
    const first = await rpc(url, 'event.from', session, ['vm'], '', 0);
    expect(first.events.length).toBeGreaterThan(0);
    expect(first.events.every((e: any) => e.class === 'vm' && e.operation === 'add' && e.snapshot)).toBe(
      true,
    );
    expect(first.token).toMatch(/^\d{20},\d{20}$/);
    expect(first.valid_ref_counts.vm).toBe(first.events.length);
    // nothing changed: an empty answer at the timeout, same position
    const idle = await rpc(url, 'event.from', session, ['vm'], first.token, 0.2);
    expect(idle.events).toEqual([]);
    // a change to a VM wakes a waiting call; a change to another class does not show
    const vm = await vmByName(url, session, 'dev-1');
    const pending = rpc(url, 'event.from', session, ['vm'], first.token, 30);
    await rpc(
      url,
      'pool.add_to_other_config',
      session,
      (await rpc(url, 'pool.get_all', session))[0],
      'k1',
      'v',
    );
    await rpc(url, 'VM.add_tags', session, vm, 'watched');
    const woke = await pending;
    expect(woke.events.map((e: any) => [e.class, e.operation, e.ref])).toEqual([['vm', 'mod', vm]]);
    expect(woke.events[0].snapshot.tags).toContain('watched');
  });

  it('event.from reports del for destroyed objects; event.inject returns a token just before a mod', async () => {
    const pool = (await rpc(url, 'pool.get_all', session))[0];
    const token = await rpc(url, 'event.inject', session, 'pool', pool);
    const after = await rpc(url, 'event.from', session, ['pool'], token, 1);
    expect(after.events.map((e: any) => [e.class, e.operation])).toEqual([['pool', 'mod']]);
    expect(await failureOf(url, 'event.inject', session, 'POOL', pool)).toEqual([
      'HANDLE_INVALID',
      'POOL',
      pool,
    ]);
    const task = await rpc(url, 'task.create', session, 'temp', '');
    const t0 = (await rpc(url, 'event.from', session, ['task'], '', 0)).token;
    await rpc(url, 'task.destroy', session, task);
    const del = await rpc(url, 'event.from', session, ['task'], t0, 1);
    expect(del.events).toEqual([expect.objectContaining({ class: 'task', operation: 'del', ref: task })]);
    expect(del.events[0].snapshot).toBeUndefined();
  });

  it('bad tokens and subscriptions get their parse failures', async () => {
    expect(await failureOf(url, 'event.from', session, ['vm'], 'garbage', 0)).toEqual([
      'EVENT_FROM_TOKEN_PARSE_FAILURE',
      'garbage',
    ]);
    expect(await failureOf(url, 'event.from', session, ['vm!'], '', 0)).toEqual([
      'EVENT_SUBSCRIPTION_PARSE_FAILURE',
      'vm!',
    ]);
  });
});

describe('task cancellation', () => {
  it('a task made by task.create is cancelled at once; an Async snapshot cannot be cancelled half-way', async () => {
    const t = await rpc(url, 'task.create', session, 'nobody works on it', '');
    expect(await rpc(url, 'task.get_allowed_operations', session, t)).toEqual(['cancel']);
    await rpc(url, 'task.cancel', session, t);
    expect(await rpc(url, 'task.get_status', session, t)).toBe('cancelled');
    expect(await rpc(url, 'task.get_error_info', session, t)).toEqual(['TASK_CANCELLED', t]);
    const [code] = await failureOf(url, 'task.cancel', session, t);
    expect(code).toBe('OPERATION_NOT_ALLOWED');

    const vm = await vmByName(url, session, 'dev-1');
    await sim.pool('lab').control.delay('VM.snapshot', 200);
    const snap = await rpc(url, 'Async.VM.snapshot', session, vm, 'not cancellable');
    const [c2] = await failureOf(url, 'task.cancel', session, snap);
    expect(c2).toBe('OPERATION_NOT_ALLOWED');
    expect((await waitTask(url, session, snap)).status).toBe('success');
    await sim.pool('lab').control.delay('VM.snapshot', 0);
  });
});
