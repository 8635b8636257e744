import { setTimeout as sleep } from 'node:timers/promises';
import { toErrorDescription, XapiFailure } from '../errors';
import type { CallContext, MethodDef } from '../methods';
import { newRef } from '../objects/db';
import { isValidSession } from '../objects/session';
import { createTask, failTask, succeedTask } from '../objects/tasks';
import type { PoolState } from '../pool';
import type { XValue } from './values';

export type DispatchResult =
  | { kind: 'success'; value: XValue }
  | { kind: 'failure'; error: string[] }
  /** system.listMethods: answered unwrapped */
  | { kind: 'raw'; value: XValue };

export function listMethods(pool: PoolState): string[] {
  return ['system.listMethods', ...[...pool.methods.keys()].sort()];
}

/**
 * XAPI's dispatch: method lookup (MESSAGE_METHOD_UNKNOWN), arity (MESSAGE_PARAMETER_COUNT_MISMATCH),
 * session (SESSION_INVALID), removed messages (MESSAGE_REMOVED), then the call itself, or for
 * `Async.*` a task returned at once and completed when the call ends.
 */
export async function dispatch(
  pool: PoolState,
  wireName: string,
  params: unknown[],
): Promise<DispatchResult> {
  if (wireName === 'system.listMethods') return { kind: 'raw', value: listMethods(pool) };
  const isAsync = wireName.startsWith('Async.') || wireName.startsWith('InternalAsync.');
  const name = isAsync ? wireName.slice(wireName.indexOf('.') + 1) : wireName;
  const def = pool.methods.get(name);
  if (!def) return failure('MESSAGE_METHOD_UNKNOWN', wireName);
  const withSession = def.session !== false;
  const received = params.length - (withSession ? 1 : 0);
  const required = def.required ?? def.params.length;
  if (received < required || received > def.params.length || (withSession && params.length === 0)) {
    return failure('MESSAGE_PARAMETER_COUNT_MISMATCH', wireName, String(required), String(received));
  }
  const session = withSession ? params[0] : '';
  if (withSession && !isValidSession(pool, session)) return failure('SESSION_INVALID', String(session));
  if (def.removed) return failure('MESSAGE_REMOVED');
  if (isAsync && !def.async) return failure('Fault', `No async mode for this operation (rpc: ${name})`);
  const args = withSession ? params.slice(1) : params;
  pool.stats.count(name);
  if (withSession) {
    pool.db.tryGet('session', String(session))!.last_active = new Date();
  }
  if (isAsync) {
    const task = createTask(pool, wireName, '', String(session), false);
    runInTask(pool, def, String(session), task, args);
    return { kind: 'success', value: task };
  }
  try {
    const value = await invoke(pool, def, { pool, session: String(session), taskRef: newRef() }, args);
    return { kind: 'success', value };
  } catch (e) {
    return { kind: 'failure', error: toErrorDescription(e) };
  }
}

function runInTask(pool: PoolState, def: MethodDef, session: string, task: string, args: unknown[]): void {
  setImmediate(() => {
    invoke(pool, def, { pool, session, taskRef: task }, args).then(
      (value) => succeedTask(pool, task, value),
      (e) => failTask(pool, task, e),
    );
  });
}

/** Calls the implementation, honouring faults and delays injected for this method. */
async function invoke(pool: PoolState, def: MethodDef, ctx: CallContext, args: unknown[]): Promise<XValue> {
  const fault = pool.faults.onCall(def.name);
  // VM operations apply their delay themselves, while the operation is marked in progress; VM field
  // accessors (get_/set_/add_to_/remove_from_) are plain calls, delayed here
  const vmOperation = def.name.startsWith('VM.') && !/^VM\.(get|set|add_to|remove_from)_/.test(def.name);
  const delay = vmOperation ? undefined : pool.faults.delays.get(def.name);
  if (delay) await sleep(delay);
  if (fault) throw new XapiFailure(fault.code, fault.params);
  const padded = [...args];
  while (padded.length < def.params.length) padded.push(undefined);
  return await def.impl(ctx, ...padded);
}

function failure(code: string, ...params: string[]): DispatchResult {
  return { kind: 'failure', error: [code, ...params] };
}
