import { randomUUID } from 'node:crypto';
import { fail, toErrorDescription, XapiFailure } from '../errors';
import type { CallContext, MethodTable } from '../methods';
import type { PoolState } from '../pool';
import { NULL_REF, XFloat, type XValue } from '../rpc/values';
import { encodeXmlValue } from '../rpc/xmlrpc';
import { makeRecord } from './schema';

/**
 * A pending task. `cancellable` tasks list `cancel` in allowed_operations: those made by
 * task.create (HTTP transfers) and transfer tasks; Async calls of operations that cannot be
 * interrupted half-way (snapshot, clone…) are not, as in XAPI.
 */
export function createTask(
  pool: PoolState,
  label: string,
  description = '',
  session = NULL_REF,
  cancellable = true,
): string {
  collectOldTasks(pool);
  const ref = pool.db.insert(
    'task',
    makeRecord('task', {
      name_label: label,
      name_description: description,
      resident_on: pool.hostRef,
      allowed_operations: cancellable ? ['cancel'] : [],
      created: new Date(),
      uuid: randomUUID(),
    }),
  );
  if (session !== NULL_REF && pool.db.has('session', session)) {
    pool.db.update('session', session, (s) => {
      s.tasks = [...(s.tasks as string[]), ref];
    });
  }
  return ref;
}

/** XAPI's `completed_task_timeout`: finished tasks nobody destroyed are removed after 65 min. */
export const COMPLETED_TASK_TIMEOUT_MS = 3900 * 1000;

function collectOldTasks(pool: PoolState, now = Date.now()): void {
  for (const [ref, t] of pool.db.all('task')) {
    const finished = t.finished as Date;
    if (
      t.status !== 'pending' &&
      t.status !== 'cancelling' &&
      finished.getTime() > 0 &&
      now - finished.getTime() > COMPLETED_TASK_TIMEOUT_MS
    ) {
      pool.db.remove('task', ref);
    }
  }
}

export function isPending(pool: PoolState, task: string): boolean {
  const t = pool.db.tryGet('task', task);
  return t !== undefined && (t.status === 'pending' || t.status === 'cancelling');
}

/** Completes a task with a value (stored as its XML-RPC serialisation, as XAPI does). */
export function succeedTask(pool: PoolState, task: string, value: XValue): void {
  if (!isPending(pool, task)) return;
  pool.cancellers.delete(task);
  pool.db.update('task', task, (t) => {
    t.status = 'success';
    t.result = value === undefined || value === '' ? '' : encodeXmlValue(value);
    t.progress = new XFloat(1);
    t.finished = new Date();
    t.allowed_operations = [];
    t.current_operations = {};
  });
}

export function failTask(pool: PoolState, task: string, error: unknown): void {
  if (!isPending(pool, task)) return;
  pool.cancellers.delete(task);
  const desc = toErrorDescription(error);
  pool.db.update('task', task, (t) => {
    t.status = desc[0] === 'TASK_CANCELLED' ? 'cancelled' : 'failure';
    t.error_info = desc;
    t.progress = new XFloat(1);
    t.finished = new Date();
    t.allowed_operations = [];
    t.current_operations = {};
  });
}

export function setProgress(pool: PoolState, task: string, progress: number): void {
  if (!isPending(pool, task)) return;
  pool.db.update('task', task, (t) => {
    t.progress = new XFloat(progress);
  });
}

/** Throws TASK_CANCELLED when the task was cancelled (long operations poll this). */
export function assertNotCancelled(pool: PoolState, task: string): void {
  const t = pool.db.tryGet('task', task);
  if (t && (t.status === 'cancelling' || t.status === 'cancelled')) fail('TASK_CANCELLED', task);
}

export function registerTaskMethods(table: MethodTable): void {
  const def = (
    name: string,
    params: string[],
    impl: (ctx: CallContext, ...a: any[]) => XValue | Promise<XValue>,
  ) => table.set(`task.${name}`, { name: `task.${name}`, params, impl });
  def('create', ['label', 'description'], (ctx, label: string, description: string) =>
    createTask(ctx.pool, String(label), String(description), ctx.session),
  );
  def('cancel', ['task'], (ctx, task: string) => {
    const t = ctx.pool.get('task', task);
    if (t.status !== 'pending') {
      fail('OPERATION_NOT_ALLOWED', `task ${task} is ${t.status}, it cannot be cancelled`);
    }
    if (!(t.allowed_operations as string[]).includes('cancel')) {
      fail('OPERATION_NOT_ALLOWED', `task ${task} (${String(t.name_label)}) cannot be cancelled`);
    }
    const abort = ctx.pool.cancellers.get(task);
    if (abort) {
      ctx.pool.db.update('task', task, (r) => {
        r.status = 'cancelling';
        r.current_operations = { [ctx.taskRef]: 'cancel' };
      });
      abort();
    } else {
      failTask(ctx.pool, task, new XapiFailure('TASK_CANCELLED', [task]));
    }
    return '';
  });
  def('destroy', ['self'], (ctx, task: string) => {
    ctx.pool.get('task', task);
    ctx.pool.db.remove('task', task);
    return '';
  });
  def('set_status', ['self', 'value'], (ctx, task: string, value: string) => {
    ctx.pool.db.update('task', task, (t) => {
      t.status = String(value).toLowerCase();
      if (t.status !== 'pending') t.finished = new Date();
    });
    return '';
  });
  def('set_progress', ['self', 'value'], (ctx, task: string, value: unknown) => {
    ctx.pool.db.update('task', task, (t) => {
      t.progress = new XFloat(Number(value));
    });
    return '';
  });
  def('set_result', ['self', 'value'], (ctx, task: string, value: string) => {
    ctx.pool.db.update('task', task, (t) => {
      t.result = String(value);
    });
    return '';
  });
  def('set_error_info', ['self', 'value'], (ctx, task: string, value: string[]) => {
    ctx.pool.db.update('task', task, (t) => {
      t.error_info = (value as unknown[]).map(String);
    });
    return '';
  });
}
