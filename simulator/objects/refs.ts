import type { Db } from './db';

/** Adds `child` to the ref-set field of a parent object (DB-maintained inverse fields). */
export function link(db: Db, cls: string, ref: string, field: string, child: string): void {
  if (!db.has(cls, ref)) return;
  db.update(cls, ref, (r) => {
    const set = r[field] as string[];
    if (!set.includes(child)) r[field] = [...set, child];
  });
}

export function unlink(db: Db, cls: string, ref: string, field: string, child: string): void {
  if (!db.has(cls, ref)) return;
  db.update(cls, ref, (r) => {
    r[field] = (r[field] as string[]).filter((x) => x !== child);
  });
}
