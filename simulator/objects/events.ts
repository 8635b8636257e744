import { fail } from '../errors';
import type { MethodTable } from '../methods';
import type { PoolState } from '../pool';
import { XInt32, type XValue } from '../rpc/values';
import type { Db, Subscription } from './db';
import { CLASSES } from './schema';

/** XAPI's token: `%020d,%020d` (DB generation, message generation), lexicographically ordered. */
export function formatToken(generation: number): string {
  return `${String(generation).padStart(20, '0')},${'0'.padStart(20, '0')}`;
}

export function parseToken(token: string): number {
  if (token === '') return -1;
  const m = /^(\d+)(?:,(\d+))?$/.exec(token);
  if (!m) fail('EVENT_FROM_TOKEN_PARSE_FAILURE', token);
  return Number(m[1]);
}

const canonical = new Map(CLASSES.map((c) => [c.toLowerCase(), c]));

/** What event.from's class list listens to ('*', class names, `class/ref`), with canonical names. */
export function parseSubscription(classes: unknown): Subscription {
  const list = Array.isArray(classes) ? classes.map(String) : [String(classes)];
  const names = new Set<string>();
  const objects: [string, string][] = [];
  let all = false;
  for (const s of list) {
    if (s === '*') all = true;
    else if (/^[A-Za-z_]+$/.test(s)) {
      const c = canonical.get(s.toLowerCase());
      if (c) names.add(c);
    } else if (/^[A-Za-z_]+\/\S+$/.test(s)) {
      const [c, ref] = s.split('/');
      const cls = canonical.get(c.toLowerCase());
      if (cls) objects.push([cls, ref]);
    } else fail('EVENT_SUBSCRIPTION_PARSE_FAILURE', s);
  }
  return { all, classes: names, objects };
}

export function validRefCounts(db: Db): Record<string, XInt32> {
  const out: Record<string, XInt32> = {};
  for (const c of CLASSES) out[c.toLowerCase()] = new XInt32(db.count(c));
  return out;
}

/** event.from: blocks until a matching change exists after the token, or the timeout. */
export async function eventFrom(
  pool: PoolState,
  classes: unknown,
  token: string,
  timeoutSeconds: number,
): Promise<XValue> {
  const sub = parseSubscription(classes);
  const since = parseToken(token);
  const deadline = Date.now() + Math.max(0, timeoutSeconds) * 1000;
  for (;;) {
    const generation = pool.db.generation;
    const changes = pool.db.changesSince(since, sub);
    const remaining = deadline - Date.now();
    if (changes.length > 0 || remaining <= 0) {
      return {
        events: changes.map((c) => ({
          id: String(c.gen),
          timestamp: String(Date.now() / 1000),
          class: c.cls.toLowerCase(),
          operation: c.operation,
          ref: c.ref,
          ...(c.record ? { snapshot: c.record } : {}),
        })),
        valid_ref_counts: validRefCounts(pool.db),
        token: formatToken(generation),
      };
    }
    await pool.db.waitForChange(remaining);
  }
}

export function registerEventMethods(table: MethodTable): void {
  table.set('event.from', {
    name: 'event.from',
    params: ['classes', 'token', 'timeout'],
    impl: (ctx, classes: unknown, token: unknown, timeout: unknown) =>
      eventFrom(ctx.pool, classes, String(token), Number(timeout)),
  });
  table.set('event.inject', {
    name: 'event.inject',
    params: ['class', 'ref'],
    impl: (ctx, cls: unknown, ref: unknown) => {
      const c = String(cls);
      if (
        !canonical.has(c.toLowerCase()) ||
        canonical.get(c.toLowerCase()) !== c ||
        !ctx.pool.db.has(c, String(ref))
      ) {
        fail('HANDLE_INVALID', c, String(ref));
      }
      const gen = ctx.pool.db.touch(c, String(ref));
      return formatToken(gen - 1);
    },
  });
  table.set('event.get_current_id', {
    name: 'event.get_current_id',
    params: [],
    impl: (ctx) => ctx.pool.db.generation,
  });
}
