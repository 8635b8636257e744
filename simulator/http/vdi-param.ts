import { fail } from '../errors';
import type { PoolState } from '../pool';

/** A VDI given by ref or uuid, as the HTTP handlers accept it. */
export function resolveObject(pool: PoolState, cls: string, refOrUuid: string): string {
  if (pool.db.has(cls, refOrUuid)) return refOrUuid;
  if (refOrUuid.startsWith('OpaqueRef:')) fail('HANDLE_INVALID', cls, refOrUuid);
  for (const [ref, r] of pool.db.all(cls)) if (r.uuid === refOrUuid) return ref;
  fail('HANDLE_INVALID', cls, refOrUuid);
}
