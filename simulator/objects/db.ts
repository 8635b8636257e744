import { randomUUID } from 'node:crypto';
import { fail } from '../errors';
import { XFloat, XInt32, type XValue } from '../rpc/values';

export type XRecord = { [field: string]: XValue };

interface Row {
  record: XRecord;
  /** generation of the last change */
  gen: number;
  /** generation at creation */
  created: number;
}

interface Tombstone {
  cls: string;
  ref: string;
  gen: number;
  created: number;
}

export interface DbChange {
  cls: string;
  ref: string;
  operation: 'add' | 'mod' | 'del';
  record?: XRecord;
  gen: number;
}

export const newRef = (): string => `OpaqueRef:${randomUUID()}`;

/**
 * A deep copy of a record whose dates and floats stay a Date and an XFloat (structuredClone makes an
 * XFloat a plain `{value}` object, which the wire would then send as a struct).
 */
export function cloneRecord<T extends XValue>(value: T): T {
  if (value instanceof Date) return new Date(value.getTime()) as T;
  if (value instanceof XFloat) return new XFloat(value.value) as T;
  if (value instanceof XInt32) return new XInt32(value.value) as T;
  if (Array.isArray(value)) return value.map((v) => cloneRecord(v)) as T;
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cloneRecord(v)])) as T;
  return value;
}

/** What an `event.from` listens to: every class, some classes, some objects (canonical class names). */
export interface Subscription {
  all: boolean;
  classes: ReadonlySet<string>;
  objects: ReadonlyArray<readonly [cls: string, ref: string]>;
}

/** One change in the log: the row's generation at that change (stale once the row changed again). */
interface LogEntry {
  gen: number;
  cls: string;
  ref: string;
}

/** Index of the first element whose `gen` is greater than `since` (the list is in generation order). */
function firstAfter(list: readonly { gen: number }[], since: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].gen > since) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * The object database of one pool: tables of records keyed by ref, a generation counter bumped by
 * each change, and tombstones for deletions, which is all `event.from` needs (state-based events).
 *
 * Each call costs what it answers, not the size of the pool (10,000 VMs are ~100,000 records): a
 * uuid index serves `get_by_uuid`, and a log of changes in generation order serves `event.from`
 * with a token (a scan from the token on, not of every table).
 */
export class Db {
  generation = 0;
  private readonly tables = new Map<string, Map<string, Row>>();
  private tombstones: Tombstone[] = [];
  private readonly listeners = new Set<() => void>();
  /** class → uuid → ref */
  private readonly uuids = new Map<string, Map<string, string>>();
  /** every insert and update after `logFrom`, in generation order (compacted now and then) */
  private log: LogEntry[] = [];
  /** changes after this generation are all in the log (rows loaded from a saved state are not) */
  private logFrom = 0;
  private rows = 0;
  /** called after every change (persistence) */
  onMutate: (() => void) | undefined;
  /** called with the class and ref of every record inserted, updated or removed (indexes) */
  onRecordChange: ((cls: string, ref: string) => void) | undefined;

  constructor(readonly classes: readonly string[]) {
    for (const c of classes) {
      this.tables.set(c, new Map());
      this.uuids.set(c, new Map());
    }
  }

  private table(cls: string): Map<string, Row> {
    const t = this.tables.get(cls);
    if (!t) throw new Error(`unknown class ${cls}`);
    return t;
  }

  has(cls: string, ref: string): boolean {
    return this.tables.get(cls)?.has(ref) ?? false;
  }

  /** The live record; HANDLE_INVALID [cls, ref] when absent. Mutate it only through `update`. */
  get(cls: string, ref: string): XRecord {
    const row = this.tables.get(cls)?.get(ref);
    if (!row) fail('HANDLE_INVALID', cls, ref);
    return row.record;
  }

  tryGet(cls: string, ref: string): XRecord | undefined {
    return this.tables.get(cls)?.get(ref)?.record;
  }

  all(cls: string): [string, XRecord][] {
    return [...this.table(cls)].map(([ref, row]) => [ref, row.record]);
  }

  count(cls: string): number {
    return this.table(cls).size;
  }

  byUuid(cls: string, uuid: string): string {
    const ref = this.refOfUuid(cls, uuid);
    if (ref === undefined) fail('UUID_INVALID', cls, uuid);
    return ref;
  }

  refOfUuid(cls: string, uuid: string): string | undefined {
    this.table(cls);
    return this.uuids.get(cls)!.get(uuid);
  }

  private index(cls: string, ref: string, uuid: unknown): void {
    if (typeof uuid === 'string' && uuid !== '') this.uuids.get(cls)!.set(uuid, ref);
  }

  private unindex(cls: string, ref: string, uuid: unknown): void {
    const byUuid = this.uuids.get(cls)!;
    if (typeof uuid === 'string' && byUuid.get(uuid) === ref) byUuid.delete(uuid);
  }

  insert(cls: string, record: XRecord, ref = newRef()): string {
    const gen = ++this.generation;
    const t = this.table(cls);
    const old = t.get(ref);
    if (old) this.unindex(cls, ref, old.record.uuid);
    else this.rows++;
    t.set(ref, { record, gen, created: gen });
    this.index(cls, ref, record.uuid);
    this.logChange(gen, cls, ref);
    this.notify(cls, ref);
    return ref;
  }

  update(cls: string, ref: string, change: (r: XRecord) => void): void {
    const t = this.table(cls);
    const row = t.get(ref);
    if (!row) fail('HANDLE_INVALID', cls, ref);
    const uuid = row.record.uuid;
    change(row.record);
    if (row.record.uuid !== uuid) {
      this.unindex(cls, ref, uuid);
      this.index(cls, ref, row.record.uuid);
    }
    row.gen = ++this.generation;
    this.logChange(row.gen, cls, ref);
    this.notify(cls, ref);
  }

  private logChange(gen: number, cls: string, ref: string): void {
    this.log.push({ gen, cls, ref });
    // entries of rows changed since are stale: keep the log within a few times the live rows
    if (this.log.length > 2 * this.rows + 10_000) {
      const live: LogEntry[] = [];
      for (const [c, t] of this.tables)
        for (const [r, row] of t) if (row.gen > this.logFrom) live.push({ gen: row.gen, cls: c, ref: r });
      this.log = live.sort((a, b) => a.gen - b.gen);
    }
  }

  /** Marks an object changed without modifying it (event.inject). */
  touch(cls: string, ref: string): number {
    this.update(cls, ref, () => {});
    return this.generation;
  }

  remove(cls: string, ref: string): void {
    const t = this.table(cls);
    const row = t.get(ref);
    if (!row) fail('HANDLE_INVALID', cls, ref);
    t.delete(ref);
    this.rows--;
    this.unindex(cls, ref, row.record.uuid);
    this.tombstones.push({ cls, ref, gen: ++this.generation, created: row.created });
    if (this.tombstones.length > 10_000) this.tombstones = this.tombstones.slice(-5_000);
    this.notify(cls, ref);
  }

  /** Changes after `since` (a generation) of what `sub` listens to (sessions never), current state. */
  changesSince(since: number, sub: Subscription): DbChange[] {
    const objects = new Set(sub.objects.map(([c, r]) => `${c}/${r}`));
    const accept = (cls: string, ref: string) =>
      cls !== 'session' && (sub.all || sub.classes.has(cls) || objects.has(`${cls}/${ref}`));
    const out: DbChange[] = [];
    const add = (cls: string, ref: string, row: Row) =>
      out.push({
        cls,
        ref,
        operation: row.created > since ? 'add' : 'mod',
        record: row.record,
        gen: row.gen,
      });
    if (!sub.all && sub.classes.size === 0) {
      // some objects only (a task being waited for): look them up
      for (const [cls, ref] of sub.objects) {
        const row = this.tables.get(cls)?.get(ref);
        if (row && row.gen > since && cls !== 'session') add(cls, ref, row);
      }
    } else if (since >= this.logFrom) {
      // from the token on: the log holds every change since, the latest one of a row once
      for (let i = firstAfter(this.log, since); i < this.log.length; i++) {
        const { gen, cls, ref } = this.log[i];
        const row = this.tables.get(cls)!.get(ref);
        if (row?.gen === gen && accept(cls, ref)) add(cls, ref, row);
      }
    } else {
      for (const [cls, t] of this.tables) {
        if (!sub.all && !sub.classes.has(cls) && !sub.objects.some(([c]) => c === cls)) continue;
        for (const [ref, row] of t) if (row.gen > since && accept(cls, ref)) add(cls, ref, row);
      }
    }
    for (let i = firstAfter(this.tombstones, since); i < this.tombstones.length; i++) {
      const tb = this.tombstones[i];
      if (tb.created <= since && accept(tb.cls, tb.ref))
        out.push({ cls: tb.cls, ref: tb.ref, operation: 'del', gen: tb.gen });
    }
    return out.sort((a, b) => a.gen - b.gen);
  }

  /** Resolves on the next change, or after `ms`. */
  waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.listeners.add(done);
    });
  }

  private notify(cls: string, ref: string): void {
    this.onRecordChange?.(cls, ref);
    this.onMutate?.();
    for (const l of [...this.listeners]) l();
  }

  /** Every table as plain data, for persistence. */
  dump(): { generation: number; tables: Record<string, Record<string, XRecord>> } {
    const tables: Record<string, Record<string, XRecord>> = {};
    for (const [cls, t] of this.tables) {
      tables[cls] = {};
      for (const [ref, row] of t) tables[cls][ref] = row.record;
    }
    return { generation: this.generation, tables };
  }

  load(data: { generation: number; tables: Record<string, Record<string, XRecord>> }): void {
    this.generation = data.generation;
    // loaded rows are older than any token given from now on; later changes are logged
    this.logFrom = data.generation;
    this.log = [];
    for (const [cls, rows] of Object.entries(data.tables)) {
      const t = this.tables.get(cls);
      if (!t) continue;
      this.rows -= t.size;
      t.clear();
      this.uuids.get(cls)!.clear();
      for (const [ref, record] of Object.entries(rows)) {
        t.set(ref, { record, gen: 0, created: 0 });
        this.index(cls, ref, record.uuid);
        this.rows++;
      }
    }
  }
}
