import { NULL_REF, XFloat, XInt32, type XValue } from '../rpc/values';
import type { XRecord } from './db';
import { coerceField } from './generic';
import { SCHEMAS } from './schema';

/** A value as ova.xml carries it (wrappers unwrapped; Dates kept). */
export type OvaValue = string | number | boolean | null | Date | OvaValue[] | { [k: string]: OvaValue };

const isRef = (v: unknown): v is string => typeof v === 'string' && v.startsWith('OpaqueRef:');

/**
 * Export rewriting (`export.ml` make_*): references to exported objects become their `Ref:<n>` id,
 * other references OpaqueRef:NULL, ref sets filtered to exported objects.
 */
export function rewriteForExport(
  record: XRecord,
  ids: ReadonlyMap<string, string>,
  changes: XRecord = {},
): Record<string, OvaValue> {
  const map = (v: XValue): OvaValue => {
    if (v instanceof XFloat || v instanceof XInt32) return v.value;
    if (v instanceof Date) return v;
    if (isRef(v)) return ids.get(v) ?? NULL_REF;
    if (Array.isArray(v)) {
      return v.filter((x) => !isRef(x) || ids.has(x)).map(map);
    }
    if (v !== null && typeof v === 'object') {
      const out: Record<string, OvaValue> = {};
      for (const [k, x] of Object.entries(v)) {
        if (isRef(x) && !ids.has(x)) continue;
        if (x !== undefined) out[k] = map(x);
      }
      return out;
    }
    return v === undefined ? '' : v;
  };
  const out: Record<string, OvaValue> = {};
  for (const [k, v] of Object.entries({ ...record, ...changes })) out[k] = map(v);
  return out;
}

/**
 * A record of class `cls` from an ova.xml snapshot: known fields coerced to the simulator's types
 * (ints arrive as strings), unknown or malformed ones replaced by defaults, `Ref:<n>` ids mapped
 * through `refs` (unknown ones to OpaqueRef:NULL).
 */
export function recordFromOva(
  cls: string,
  snapshot: Record<string, unknown>,
  refs: ReadonlyMap<string, string>,
): XRecord {
  const defaults = SCHEMAS[cls].defaults();
  const out: XRecord = { ...defaults };
  const mapRef = (v: unknown): unknown => {
    if (typeof v === 'string' && (v.startsWith('Ref:') || v.startsWith('OpaqueRef:')))
      return refs.get(v) ?? NULL_REF;
    if (Array.isArray(v)) return v.map(mapRef).filter((x) => x !== NULL_REF);
    return v;
  };
  for (const [k, v] of Object.entries(snapshot)) {
    if (!(k in defaults) || k === 'uuid') continue;
    try {
      out[k] = coerceField(cls, k, defaults[k], mapRef(v));
    } catch {
      // keep the default for a value this simulator cannot represent
    }
  }
  return out;
}
