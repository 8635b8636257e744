import { randomUUID } from 'node:crypto';
import { fail } from '../errors';
import type { XValue } from '../rpc/values';

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
 * The object database of one pool: tables of records keyed by ref, a generation counter bumped by
 * each change, and tombstones for deletions, which is all `event.from` needs (state-based events).
 */
export class Db {
  generation = 0;
  private readonly tables = new Map<string, Map<string, Row>>();
  private tombstones: Tombstone[] = [];
  private readonly listeners = new Set<() => void>();
  /** called after every change (persistence) */
  onMutate: (() => void) | undefined;

  constructor(readonly classes: readonly string[]) {
    for (const c of classes) this.tables.set(c, new Map());
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
    for (const [ref, row] of this.table(cls)) if (row.record.uuid === uuid) return ref;
    fail('UUID_INVALID', cls, uuid);
  }

  insert(cls: string, record: XRecord, ref = newRef()): string {
    const gen = ++this.generation;
    this.table(cls).set(ref, { record, gen, created: gen });
    this.notify();
    return ref;
  }

  update(cls: string, ref: string, change: (r: XRecord) => void): void {
    const t = this.table(cls);
    const row = t.get(ref);
    if (!row) fail('HANDLE_INVALID', cls, ref);
    change(row.record);
    row.gen = ++this.generation;
    this.notify();
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
    this.tombstones.push({ cls, ref, gen: ++this.generation, created: row.created });
    if (this.tombstones.length > 10_000) this.tombstones = this.tombstones.slice(-5_000);
    this.notify();
  }

  /** Changes after `since` (a generation) in the given classes (canonical names), current state. */
  changesSince(since: number, accept: (cls: string, ref: string) => boolean): DbChange[] {
    const out: DbChange[] = [];
    for (const [cls, t] of this.tables) {
      for (const [ref, row] of t) {
        if (row.gen > since && accept(cls, ref)) {
          out.push({
            cls,
            ref,
            operation: row.created > since ? 'add' : 'mod',
            record: row.record,
            gen: row.gen,
          });
        }
      }
    }
    for (const tb of this.tombstones) {
      if (tb.gen > since && tb.created <= since && accept(tb.cls, tb.ref)) {
        out.push({ cls: tb.cls, ref: tb.ref, operation: 'del', gen: tb.gen });
      }
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

  private notify(): void {
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
    for (const [cls, rows] of Object.entries(data.tables)) {
      const t = this.tables.get(cls);
      if (!t) continue;
      t.clear();
      for (const [ref, record] of Object.entries(rows)) t.set(ref, { record, gen: 0, created: 0 });
    }
  }
}
