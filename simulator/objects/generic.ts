import { fail } from '../errors';
import type { CallContext, MethodTable } from '../methods';
import { parseXapiDate, XFloat, type XValue } from '../rpc/values';
import type { XRecord } from './db';
import { SCHEMAS } from './schema';

/** Converts a wire value to the type of the field's default value, as XAPI's unmarshaller would. */
export function coerceField(cls: string, field: string, like: XValue, v: unknown): XValue {
  const bad = (): never =>
    fail('INVALID_VALUE', `${cls}.${field}`, typeof v === 'object' ? JSON.stringify(v) : String(v));
  if (typeof like === 'boolean') {
    if (typeof v !== 'boolean') bad();
    return v as boolean;
  }
  if (typeof like === 'number') {
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) bad();
    return n as number;
  }
  if (like instanceof XFloat) {
    const n = Number(v);
    if (typeof v === 'boolean' || Number.isNaN(n)) bad();
    return new XFloat(n);
  }
  if (like instanceof Date) {
    if (v instanceof Date) return v;
    if (typeof v !== 'string') bad();
    return parseXapiDate(v as string);
  }
  if (Array.isArray(like)) {
    if (!Array.isArray(v)) bad();
    return (v as unknown[]).map((x) => (typeof x === 'number' ? x : String(x)));
  }
  if (like !== null && typeof like === 'object') {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) bad();
    return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, String(x)]));
  }
  if (typeof v !== 'string') bad();
  return v as string;
}

/** Fields of a create() record: known fields coerced, unknown ones ignored. */
export function recordFromArgs(cls: string, args: unknown, mandatory: readonly string[]): XRecord {
  if (args === null || typeof args !== 'object' || Array.isArray(args))
    fail('INVALID_VALUE', `${cls} record`, String(args));
  const defaults = SCHEMAS[cls].defaults();
  const given = args as Record<string, unknown>;
  for (const m of mandatory) if (given[m] === undefined) fail('FIELD_TYPE_ERROR', m);
  const out: XRecord = {};
  for (const [k, v] of Object.entries(given)) {
    if (k in defaults && k !== 'uuid') out[k] = coerceField(cls, k, defaults[k], v);
  }
  return out;
}

/**
 * The implicit messages of every class: get_record, get_all, get_all_records, get_by_uuid,
 * get_by_name_label, get_<field>, set_<field>, add_to_/remove_from_<map>, add_/remove_<set>.
 * Explicit messages registered later override these.
 */
export function registerGenericMethods(table: MethodTable, cls: string): void {
  const schema = SCHEMAS[cls];
  const defaults = schema.defaults();
  const def = (name: string, params: string[], impl: (ctx: CallContext, ...a: any[]) => XValue) =>
    table.set(`${cls}.${name}`, { name: `${cls}.${name}`, params, impl });

  def('get_record', ['self'], (ctx, ref: string) => ctx.pool.get(cls, ref));
  def('get_all', [], (ctx) => ctx.pool.db.all(cls).map(([ref]) => ref));
  def('get_all_records', [], (ctx) => Object.fromEntries(ctx.pool.db.all(cls)));
  def('get_by_uuid', ['uuid'], (ctx, uuid: string) => ctx.pool.db.byUuid(cls, String(uuid)));
  if (schema.hasNameLabel) {
    def('get_by_name_label', ['label'], (ctx, label: string) =>
      ctx.pool.db
        .all(cls)
        .filter(([, r]) => r.name_label === label)
        .map(([ref]) => ref),
    );
  }
  for (const field of Object.keys(defaults)) {
    def(`get_${field}`, ['self'], (ctx, ref: string) => ctx.pool.get(cls, ref)[field]);
  }
  for (const field of schema.rw) {
    const like = defaults[field];
    def(`set_${field}`, ['self', 'value'], (ctx, ref: string, value: unknown) => {
      const v = coerceField(cls, field, like, value);
      ctx.pool.db.update(cls, ref, (r) => {
        r[field] = v;
      });
      return '';
    });
    if (Array.isArray(like)) {
      def(`add_${field}`, ['self', 'value'], (ctx, ref: string, value: unknown) => {
        ctx.pool.db.update(cls, ref, (r) => {
          const set = r[field] as XValue[];
          if (!set.includes(String(value))) r[field] = [...set, String(value)];
        });
        return '';
      });
      def(`remove_${field}`, ['self', 'value'], (ctx, ref: string, value: unknown) => {
        ctx.pool.db.update(cls, ref, (r) => {
          r[field] = (r[field] as XValue[]).filter((x) => x !== String(value));
        });
        return '';
      });
    } else if (
      like !== null &&
      typeof like === 'object' &&
      !(like instanceof Date) &&
      !(like instanceof XFloat)
    ) {
      def(`add_to_${field}`, ['self', 'key', 'value'], (ctx, ref: string, key: unknown, value: unknown) => {
        const r = ctx.pool.get(cls, ref);
        const map = r[field] as Record<string, string>;
        if (Object.hasOwn(map, String(key))) fail('MAP_DUPLICATE_KEY', cls, field, ref, String(key));
        ctx.pool.db.update(cls, ref, (x) => {
          x[field] = { ...map, [String(key)]: String(value) };
        });
        return '';
      });
      def(`remove_from_${field}`, ['self', 'key'], (ctx, ref: string, key: unknown) => {
        ctx.pool.db.update(cls, ref, (x) => {
          const map = { ...(x[field] as Record<string, string>) };
          delete map[String(key)];
          x[field] = map;
        });
        return '';
      });
    }
  }
}
