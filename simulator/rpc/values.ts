/**
 * XAPI wire values. Plain JS values map to XAPI types as follows: string → string/ref/enum,
 * integer number → int (int64), boolean → bool, Date → datetime, array → set, plain object → map
 * or record. Two wrappers carry what JS cannot tell apart: `XFloat` (a float even when integral,
 * e.g. task.progress 1.0) and `XInt32` (only event.from's valid_ref_counts).
 */
export class XFloat {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
}

export class XInt32 {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
}

export type XValue =
  | string
  | number
  | boolean
  | Date
  | XFloat
  | XInt32
  | XValue[]
  | { [key: string]: XValue }
  | null
  | undefined;

export const NULL_REF = 'OpaqueRef:NULL';
export const EPOCH = new Date(0);

/** XAPI's datetime format: `YYYYMMDDTHH:MM:SSZ` (basic date, extended time, UTC, no ms). */
export function formatXapiDate(d: Date): string {
  const iso = d.toISOString(); // 2025-03-19T04:16:24.123Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 19)}Z`;
}

/** Parses XAPI's date format and the ISO 8601 extended one. */
export function parseXapiDate(s: string): Date {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(s);
  if (!m) throw new Error(`not a XAPI datetime: ${JSON.stringify(s)}`);
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${m[7] ?? 'Z'}`);
}

/** Converts a value into JSON-RPC form (dates as XAPI strings, wrappers unwrapped). */
export function toJsonValue(v: XValue): unknown {
  if (v instanceof Date) return formatXapiDate(v);
  if (v instanceof XFloat || v instanceof XInt32) return v.value;
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toJsonValue(x);
    return out;
  }
  if (v === undefined || v === null) return '';
  return v;
}
