/** Raw wire helpers for tests: what a client sends, what the simulator answers, nothing hidden. */
export async function postRaw(
  url: string,
  path: string,
  body: string,
): Promise<{ status: number; type: string | null; text: string }> {
  const r = await fetch(url + path, { method: 'POST', body });
  return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
}

export async function jsonCall(
  url: string,
  method: string,
  params: unknown[],
  version: 1 | 2 = 2,
): Promise<any> {
  const req = version === 2 ? { jsonrpc: '2.0', id: 7, method, params } : { id: 7, method, params };
  const r = await postRaw(url, '/jsonrpc', JSON.stringify(req));
  return JSON.parse(r.text);
}

/** A JSON-RPC v2 call returning the result, or throwing {code, params}. */
export async function rpc<T = any>(url: string, method: string, ...params: unknown[]): Promise<T> {
  const a = await jsonCall(url, method, params);
  if (a.error)
    throw Object.assign(new Error(`${a.error.message}(${a.error.data.join(', ')})`), {
      code: a.error.message,
      params: a.error.data,
    });
  return a.result;
}

/** The ErrorDescription of a failing call, [code, ...params]. */
export async function failureOf(url: string, method: string, ...params: unknown[]): Promise<string[]> {
  const a = await jsonCall(url, method, params);
  if (!a.error)
    throw new Error(`${method} succeeded, a failure was expected: ${JSON.stringify(a.result).slice(0, 200)}`);
  return [a.error.message, ...a.error.data];
}

export function xmlCall(method: string, params: string[]): string {
  return `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${params
    .map((p) => `<param>${p}</param>`)
    .join('')}</params></methodCall>`;
}

export const str = (s: string) => `<value>${s}</value>`;

export async function login(url: string, user = 'root', password = 'secret'): Promise<string> {
  return rpc(url, 'session.login_with_password', user, password);
}

const FINAL = new Set(['success', 'failure', 'cancelled']);

/** Waits for a task to end (success, failure or cancelled); returns its record. */
export async function waitTask(url: string, session: string, task: string): Promise<any> {
  let token = '';
  for (;;) {
    const batch = await rpc(url, 'event.from', session, [`task/${task}`], token, 5);
    token = batch.token;
    // XAPI's task states: pending and cancelling pass; success, failure and cancelled are final.
    for (const e of batch.events) if (FINAL.has(e.snapshot?.status)) return e.snapshot;
  }
}

/** Finds a VM ref by name. */
export async function vmByName(url: string, session: string, name: string): Promise<string> {
  const refs = await rpc<string[]>(url, 'VM.get_by_name_label', session, name);
  if (refs.length !== 1) throw new Error(`expected one VM named ${name}, found ${refs.length}`);
  return refs[0];
}
