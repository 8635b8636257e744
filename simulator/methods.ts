import type { PoolState } from './pool';
import type { XValue } from './rpc/values';

export interface CallContext {
  pool: PoolState;
  session: string;
  /** the task tracking this call (Async.* task, or an internal one for sync calls) */
  taskRef: string;
}

export interface MethodDef {
  /** wire name, e.g. `VM.snapshot` */
  name: string;
  /** parameter names, session excluded */
  params: readonly string[];
  /** how many params have no default (trailing ones may be omitted); default: all */
  required?: number;
  /** false for session.login_with_password and system.* */
  session?: boolean;
  /** Async.<name> allowed */
  async?: boolean;
  /** answers MESSAGE_REMOVED after the session check */
  removed?: boolean;
  impl: (ctx: CallContext, ...args: any[]) => XValue | Promise<XValue>;
}

export type MethodTable = Map<string, MethodDef>;

export function define(table: MethodTable, def: MethodDef): void {
  table.set(def.name, def);
}
