// The simulator's database answers event.from and get_by_uuid from indexes (a change log, a uuid
// index) so that a call costs what it answers, not the pool's size (issue 14: 10,000 VMs). These
// tests hold the indexes to what a scan of every record would answer, through any sequence of
// inserts, updates (uuid changes too), removals, compactions of the log and a reload.
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Db, type DbChange, type Subscription } from '../../simulator/objects/db';
import { BLOCK_SIZE, BlockStore } from '../../simulator/storage/blockstore';

type Op =
  | { kind: 'insert'; cls: number; uuid: number }
  | { kind: 'update'; row: number; uuid?: number }
  | { kind: 'remove'; row: number }
  | { kind: 'token' }
  | { kind: 'reload' };

const CLASSES = ['VM', 'task', 'session'];

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('insert' as const), cls: fc.nat(2), uuid: fc.nat(9) }),
  },
  {
    weight: 5,
    arbitrary: fc.record(
      { kind: fc.constant('update' as const), row: fc.nat(), uuid: fc.nat(9) },
      { requiredKeys: ['kind', 'row'] },
    ),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), row: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('token' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reload' as const) }) },
);

interface ModelRow {
  cls: string;
  ref: string;
  uuid: string;
  created: number;
  gen: number;
}

/** What a scan of every record and tombstone answers (the semantics of event.from). */
function expected(
  rows: ModelRow[],
  dels: { cls: string; ref: string; gen: number; created: number }[],
  since: number,
  sub: Subscription,
): Pick<DbChange, 'cls' | 'ref' | 'operation' | 'gen'>[] {
  const accept = (cls: string, ref: string) =>
    cls !== 'session' &&
    (sub.all || sub.classes.has(cls) || sub.objects.some(([c, r]) => c === cls && r === ref));
  return [
    ...rows
      .filter((r) => r.gen > since && accept(r.cls, r.ref))
      .map(
        (r) =>
          ({ cls: r.cls, ref: r.ref, operation: r.created > since ? 'add' : 'mod', gen: r.gen }) as const,
      ),
    ...dels
      .filter((d) => d.gen > since && d.created <= since && accept(d.cls, d.ref))
      .map((d) => ({ cls: d.cls, ref: d.ref, operation: 'del', gen: d.gen }) as const),
  ].sort((a, b) => a.gen - b.gen);
}

/** Changes in generation order; rows loaded from a saved state all have generation 0, in no order. */
const byGen = <T extends { gen: number; cls: string; ref: string }>(changes: T[]) =>
  changes
    .map(({ cls, ref, operation, gen }: T & { operation?: string }) => ({ cls, ref, operation, gen }))
    .sort((a, b) => a.gen - b.gen || (`${a.cls}/${a.ref}` < `${b.cls}/${b.ref}` ? -1 : 1));

describe('simulator database indexes', () => {
  it('event.from from any token and get_by_uuid answer what a scan of every record would, whatever the changes and reloads', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), fc.nat(), (ops, pad) => {
        let db = new Db(CLASSES);
        const rows: ModelRow[] = [];
        const dels: { cls: string; ref: string; gen: number; created: number }[] = [];
        /** uuids no row has any more (removed, or changed) */
        const gone: { cls: string; uuid: string }[] = [];
        const tokens = [-1, 0];
        let serial = 0; // uuids are unique, as XAPI's are
        // a row changed over and over first, so that the log is compacted on the way (> 10,000 entries)
        const busy = db.insert('VM', { uuid: 'busy' });
        for (let i = 0; i < 10_000 + (pad % 50); i++) db.update('VM', busy, () => {});
        rows.push({ cls: 'VM', ref: busy, uuid: 'busy', created: 1, gen: db.generation });
        for (const o of ops) {
          if (o.kind === 'insert') {
            const cls = CLASSES[o.cls];
            const uuid = `u${o.uuid}-${serial++}`;
            const ref = db.insert(cls, { uuid });
            rows.push({ cls, ref, uuid, created: db.generation, gen: db.generation });
          } else if (o.kind === 'update' && rows.length > 0) {
            const row = rows[o.row % rows.length];
            const uuid = o.uuid === undefined ? row.uuid : `changed-${o.uuid}-${serial++}`;
            db.update(row.cls, row.ref, (r) => {
              r.uuid = uuid;
            });
            if (row.uuid !== uuid) gone.push({ cls: row.cls, uuid: row.uuid });
            row.uuid = uuid;
            row.gen = db.generation;
          } else if (o.kind === 'remove' && rows.length > 0) {
            const [row] = rows.splice(o.row % rows.length, 1);
            db.remove(row.cls, row.ref);
            gone.push({ cls: row.cls, uuid: row.uuid });
            dels.push({ cls: row.cls, ref: row.ref, gen: db.generation, created: row.created });
          } else if (o.kind === 'token') tokens.push(db.generation);
          else if (o.kind === 'reload') {
            // a saved state loads with every row older than any token given from then on
            const dump = db.dump();
            db = new Db(CLASSES);
            db.load(dump);
            for (const r of rows) r.created = r.gen = 0;
            dels.length = 0;
            tokens.length = 0;
            tokens.push(-1, db.generation);
          }
        }
        tokens.push(db.generation);
        const subs: Subscription[] = [
          { all: true, classes: new Set(), objects: [] },
          { all: false, classes: new Set(['task']), objects: [] },
          { all: false, classes: new Set(), objects: rows.slice(0, 2).map((r) => [r.cls, r.ref] as const) },
          {
            all: false,
            classes: new Set(['VM']),
            objects: rows.slice(-1).map((r) => [r.cls, r.ref] as const),
          },
        ];
        for (const since of tokens)
          for (const sub of subs)
            expect(byGen(db.changesSince(since, sub))).toEqual(byGen(expected(rows, dels, since, sub)));
        for (const r of rows) expect(db.byUuid(r.cls, r.uuid)).toBe(r.ref);
        for (const g of gone) expect(() => db.byUuid(g.cls, g.uuid)).toThrow(/UUID_INVALID/);
      }),
      { numRuns: 40 },
    );
  });
});

describe('simulator block store', () => {
  it('keeps at most a few hundred layer files open, however many disks it holds (a pool of 10,000 VMs)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'xcpb-blockstore-fds-'));
    const store = new BlockStore(dir);
    try {
      const data = Buffer.alloc(BLOCK_SIZE, 7);
      for (let i = 0; i < 1_000; i++) {
        store.createVdi(`vdi-${i}`);
        await store.writeBlock(`vdi-${i}`, 0, data);
      }
      const open = async () => {
        let n = 0;
        for (const fd of await readdir('/proc/self/fd')) {
          const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
          if (target.startsWith(dir)) n++;
        }
        return n;
      };
      expect(await open()).toBeLessThanOrEqual(256);
      // and every disk still reads what was written to it, reopening its file
      for (let i = 0; i < 1_000; i += 97)
        expect((await store.readBlock(`vdi-${i}`, 0)).equals(data)).toBe(true);
      expect(await open()).toBeLessThanOrEqual(256);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
