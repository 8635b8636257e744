import type { Readable } from 'node:stream';
import { XapiError } from './errors';
import { getStream, putStream, type TransferTarget } from './http-transfer';
import { XapiRpc } from './rpc';
import { parseTaskResult } from './task-result';

export interface XapiConnectOptions {
  /** http(s)://host[:port] of the pool master */
  url: string;
  username: string;
  password: string;
  /** accept a self-signed certificate for this pool (TLS is verified by default) */
  allowUnauthorized?: boolean;
  signal?: AbortSignal;
}

export interface XapiClient {
  readonly sessionId: string;
  /** session id prepended automatically; returns Value. Ints arrive as decimal strings (XML-RPC). */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
  /** Async.<method>, waits for the task, returns its parsed result (e.g. a ref) */
  callAsync<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
  getRecord<T = Record<string, unknown>>(cls: string, ref: string): Promise<T>;
  getAllRecords<T = Record<string, unknown>>(cls: string): Promise<Record<string, T>>;
  /** GET a transfer handler with session_id and a new task_id */
  getResource(
    path: string,
    query: Record<string, string>,
    opts?: { signal?: AbortSignal },
  ): Promise<{ body: Readable; taskRef: string }>;
  /**
   * PUT to a transfer handler with session_id and task_id; resolves with the task's result. The task
   * is a new one, destroyed at the end, unless `taskRef` names one the caller created (and keeps, so
   * a retried attempt can find the result: see activities/import-once.ts).
   */
  putResource(
    path: string,
    query: Record<string, string>,
    body: Readable,
    opts?: { signal?: AbortSignal; size?: number; taskRef?: string },
  ): Promise<{ taskRef: string; result: string; value: unknown }>;
  /** waits until the task leaves `pending`; its parsed result, or XapiError from error_info */
  waitTask<T = unknown>(taskRef: string, opts?: { signal?: AbortSignal }): Promise<T>;
  cancelTask(taskRef: string): Promise<void>;
  /**
   * The pool's changes as they happen (`event.from`): first every existing object of `classes` as
   * `add`, then `add`/`mod`/`del` events; ends when `signal` aborts.
   */
  events(classes: string[], opts?: { signal?: AbortSignal; pollSeconds?: number }): AsyncGenerator<XapiEvent>;
  logout(): Promise<void>;
}

export interface XapiEvent {
  /** lowercase class name, as XAPI sends it (`vm`, `task`…) */
  class: string;
  operation: 'add' | 'mod' | 'del';
  ref: string;
  /** the object's current record (absent for `del`) */
  snapshot?: Record<string, unknown>;
}

interface TaskRecord {
  status: string;
  result: string;
  error_info: string[];
}

class Client implements XapiClient {
  sessionId = '';
  private readonly target: TransferTarget;

  constructor(
    private readonly rpc: XapiRpc,
    private readonly opts: XapiConnectOptions,
    url: URL,
  ) {
    this.target = { base: url, allowUnauthorized: opts.allowUnauthorized ?? false };
  }

  async login(): Promise<void> {
    this.sessionId = String(
      await this.rpc.call(
        'session.login_with_password',
        [this.opts.username, this.opts.password, '2.21', 'xcp-backup'],
        this.opts.signal,
      ),
    );
  }

  async call<T>(method: string, ...args: unknown[]): Promise<T> {
    try {
      return (await this.rpc.call(method, [this.sessionId, ...args])) as T;
    } catch (e) {
      if (e instanceof XapiError && e.code === 'SESSION_INVALID' && !method.startsWith('session.')) {
        await this.login();
        return (await this.rpc.call(method, [this.sessionId, ...args])) as T;
      }
      throw e;
    }
  }

  async callAsync<T>(method: string, ...args: unknown[]): Promise<T> {
    const task = await this.call<string>(`Async.${method}`, ...args);
    try {
      return await this.waitTask<T>(task);
    } finally {
      await this.call('task.destroy', task).catch(() => {});
    }
  }

  getRecord<T>(cls: string, ref: string): Promise<T> {
    return this.call<T>(`${cls}.get_record`, ref);
  }

  getAllRecords<T>(cls: string): Promise<Record<string, T>> {
    return this.call<Record<string, T>>(`${cls}.get_all_records`);
  }

  async waitTask<T>(taskRef: string, opts: { signal?: AbortSignal } = {}): Promise<T> {
    let token = '';
    for (;;) {
      opts.signal?.throwIfAborted();
      const batch = await this.call<{
        events: { ref: string; operation: string; snapshot?: TaskRecord }[];
        token: string;
      }>('event.from', [`task/${taskRef}`], token, 5.0001);
      token = batch.token;
      for (const ev of batch.events) {
        if (ev.operation === 'del')
          throw new XapiError('HANDLE_INVALID', ['task', taskRef], 'task destroyed before completion');
        const t = ev.snapshot;
        if (!t || t.status === 'pending' || t.status === 'cancelling') continue;
        if (t.status === 'success') return (await parseTaskResult(String(t.result ?? ''))) as T;
        if (t.status === 'cancelled') throw new XapiError('TASK_CANCELLED', [taskRef]);
        throw XapiError.fromDescription(t.error_info, taskRef);
      }
    }
  }

  async getResource(path: string, query: Record<string, string>, opts: { signal?: AbortSignal } = {}) {
    const taskRef = await this.call<string>('task.create', `xcpb GET ${path}`, '');
    try {
      const body = await getStream(
        this.target,
        path,
        { ...query, session_id: this.sessionId, task_id: taskRef },
        opts.signal,
      );
      opts.signal?.addEventListener('abort', () => this.cancelTask(taskRef).catch(() => {}), { once: true });
      return { body, taskRef };
    } catch (e) {
      throw await this.preferTaskError(taskRef, e);
    }
  }

  async putResource(
    path: string,
    query: Record<string, string>,
    body: Readable,
    opts: { signal?: AbortSignal; size?: number; taskRef?: string } = {},
  ) {
    const taskRef = opts.taskRef ?? (await this.call<string>('task.create', `xcpb PUT ${path}`, ''));
    const onAbort = () => this.cancelTask(taskRef).catch(() => {});
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const sent = putStream(
        this.target,
        path,
        { ...query, session_id: this.sessionId, task_id: taskRef },
        body,
        opts.size,
        opts.signal,
      );
      const done = this.waitTask<unknown>(taskRef, { signal: opts.signal });
      done.catch(() => {});
      await sent.catch(async (e) => {
        throw await this.preferTaskError(taskRef, e);
      });
      const value = await done;
      const result = Array.isArray(value) ? String(value[0] ?? '') : String(value ?? '');
      return { taskRef, result, value };
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      if (!opts.taskRef) await this.call('task.destroy', taskRef).catch(() => {});
    }
  }

  /** When a transfer fails, the task's error (XAPI's reason) says more than the HTTP status. */
  private async preferTaskError(taskRef: string, e: unknown): Promise<unknown> {
    try {
      const t = await this.getRecord<TaskRecord>('task', taskRef);
      if (t.status === 'failure') return XapiError.fromDescription(t.error_info, taskRef);
      if (t.status === 'cancelled') return new XapiError('TASK_CANCELLED', [taskRef]);
    } catch {}
    return e;
  }

  async *events(
    classes: string[],
    opts: { signal?: AbortSignal; pollSeconds?: number } = {},
  ): AsyncGenerator<XapiEvent> {
    let token = '';
    const poll = opts.pollSeconds ?? 5;
    while (!opts.signal?.aborted) {
      const batch = await this.call<{ events: XapiEvent[]; token: string }>(
        'event.from',
        classes,
        token,
        poll + 0.0001,
      );
      token = batch.token;
      for (const ev of batch.events) {
        if (opts.signal?.aborted) return;
        yield ev;
      }
    }
  }

  async cancelTask(taskRef: string): Promise<void> {
    await this.call('task.cancel', taskRef);
  }

  async logout(): Promise<void> {
    if (!this.sessionId) return;
    await this.call('session.logout').catch(() => {});
    this.sessionId = '';
  }
}

/** Logs in to a pool master; TLS certificates are verified unless `allowUnauthorized`. */
export async function connectXapi(opts: XapiConnectOptions): Promise<XapiClient> {
  const url = new URL(opts.url.includes('://') ? opts.url : `https://${opts.url}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`XAPI url must be http(s): ${opts.url}`);
  const rpc = new XapiRpc({ url, allowUnauthorized: opts.allowUnauthorized ?? false });
  const client = new Client(rpc, opts, url);
  await client.login();
  return client;
}
