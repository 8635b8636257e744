import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE, BlockStore } from '../../simulator/storage/blockstore';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'xcpb-blockstore-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const block = (byte: number) => Buffer.alloc(BLOCK_SIZE, byte);
const NBLOCKS = 4;

type Op =
  | { kind: 'write'; vdi: number; index: number; byte: number }
  | { kind: 'snapshot'; vdi: number }
  | { kind: 'clone'; vdi: number }
  | { kind: 'delete'; vdi: number }
  | { kind: 'coalesce' }
  | { kind: 'background-coalesce' }
  | { kind: 'reload' };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      vdi: fc.nat(7),
      index: fc.nat(NBLOCKS - 1),
      byte: fc.integer({ min: 1, max: 255 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), vdi: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clone' as const), vdi: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), vdi: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('coalesce' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('background-coalesce' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reload' as const) }) },
);

describe('BlockStore (copy-on-write layers)', () => {
  it('every VDI reads what was written to it or inherited at its snapshot, whatever the snapshots, deletions, coalesces (also running under writes) and reloads', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 18 }), async (ops) => {
        let store = new BlockStore(join(dir, `run-${run++}`));
        // the model: each VDI's content as block index → fill byte (0 = never written)
        const model = new Map<string, number[]>([['v0', Array(NBLOCKS).fill(0)]]);
        store.createVdi('v0');
        let n = 1;
        const pick = (k: number) => [...model.keys()][k % model.size];
        const readOnly = new Set<string>();
        for (const o of ops) {
          if (o.kind === 'reload') {
            const meta = structuredClone(store.dump());
            await store.close();
            store = new BlockStore(store.dir);
            store.load(meta);
            continue;
          }
          if (o.kind === 'coalesce') {
            await store.coalesce();
            continue;
          }
          if (o.kind === 'background-coalesce') {
            // the SR's garbage collector, not awaited: the next operations race it
            void store.coalesce();
            continue;
          }
          if (model.size === 0) break;
          const vdi = pick(o.vdi);
          if (o.kind === 'write') {
            if (readOnly.has(vdi)) continue;
            await store.writeBlock(vdi, o.index, block(o.byte));
            model.get(vdi)![o.index] = o.byte;
          } else if (o.kind === 'snapshot' || o.kind === 'clone') {
            const id = `v${n++}`;
            if (o.kind === 'snapshot') {
              store.snapshotVdi(vdi, id);
              readOnly.add(id);
            } else store.cloneVdi(vdi, id);
            model.set(id, [...model.get(vdi)!]);
          } else if (o.kind === 'delete' && model.size > 1) {
            store.deleteVdi(vdi);
            model.delete(vdi);
          }
        }
        // read both while a merge may still run and once the collector is done
        const check = async () => {
          for (const [vdi, content] of model) {
            for (let i = 0; i < NBLOCKS; i++) {
              const b = await store.readBlock(vdi, i);
              expect(b[0], `${vdi} block ${i}`).toBe(content[i]);
              expect(b[BLOCK_SIZE - 1]).toBe(content[i]);
            }
            expect(store.chainLength(vdi)).toBeGreaterThan(0);
          }
        };
        await check();
        await store.coalesce();
        await store.idle();
        await check();
        // once merged, no layer is left that nobody points at with a single child
        for (const vdi of model.keys()) expect(store.chainLength(vdi)).toBeLessThanOrEqual(ops.length + 1);
        // a delta between any two VDIs lists at least every block whose content differs
        const ids = [...model.keys()];
        for (const a of ids) {
          for (const b of ids) {
            const delta = new Set(store.deltaBlocks(a, b));
            for (let i = 0; i < NBLOCKS; i++) {
              if (model.get(a)![i] !== model.get(b)![i])
                expect(delta.has(i), `${a} vs ${b} block ${i}`).toBe(true);
            }
          }
        }
        await store.close();
      }),
      { numRuns: 30 },
    );
  });

  it('a snapshot shares blocks; the delta after it is only the blocks written since; deleting it coalesces the chain', async () => {
    const store = new BlockStore(join(dir, 'scenario'));
    store.createVdi('disk');
    for (let i = 0; i < 8; i++) await store.writeBlock('disk', i, block(i + 1));
    store.snapshotVdi('disk', 's1');
    await store.writeBlock('disk', 3, block(99));
    await store.writeBytes('disk', 6 * BLOCK_SIZE + 10, Buffer.from('x'));
    store.snapshotVdi('disk', 's2');
    expect(store.deltaBlocks('s2', 's1')).toEqual([3, 6]);
    expect(store.allocatedBlocks('s2')).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(store.chainLength('disk')).toBe(3);
    store.deleteVdi('s1');
    // deleting costs metadata time: the chain shrinks when the garbage collector has merged it
    expect(store.chainLength('disk')).toBe(3);
    expect(await store.coalesce()).toBe(1);
    expect(store.chainLength('disk')).toBe(2);
    expect((await store.readBlock('s2', 0))[0]).toBe(1);
    expect((await store.readBlock('disk', 3))[0]).toBe(99);
    await store.close();
  });

  it('a kill at any moment of a merge loses nothing: the state saved last reads the same, and the merge resumes', async () => {
    // saves only when files go, or also every millisecond (a state saved mid-merge)
    for (const [killAfterMs, saveEveryMs] of [0, 2, 10, 200].flatMap((k) => [
      [k, 0],
      [k, 1],
    ])) {
      const store = new BlockStore(join(dir, `kill-${killAfterMs}-${saveEveryMs}`));
      store.createVdi('disk');
      for (let i = 0; i < 16; i++) await store.writeBlock('disk', i, block(i + 1));
      store.snapshotVdi('disk', 's1');
      for (let i = 0; i < 12; i++) await store.writeBlock('disk', i, block(100 + i));
      store.snapshotVdi('disk', 's2');
      await store.writeBlock('disk', 15, block(200));
      const expected = {
        s2: [...Array.from({ length: 12 }, (_, i) => 100 + i), 13, 14, 15, 16],
        disk: [...Array.from({ length: 12 }, (_, i) => 100 + i), 13, 14, 15, 200],
      };
      store.deleteVdi('s1');
      // what a pool does: saves the metadata now and then (here every `saveEveryMs`, or never), and
      // only then lets the files of the layers it no longer names go
      let saved = structuredClone(store.dump());
      store.requestSave = () => {};
      const saver =
        saveEveryMs > 0
          ? setInterval(() => {
              saved = structuredClone(store.dump());
              void store.saved();
            }, saveEveryMs)
          : undefined;
      const merging = store.coalesce();
      await new Promise((r) => setTimeout(r, killAfterMs));
      clearInterval(saver);
      await store.close(); // the kill: no more work after this point
      await merging;

      const again = new BlockStore(store.dir);
      again.load(structuredClone(saved));
      const read = async () => {
        for (const [vdi, want] of Object.entries(expected))
          for (let i = 0; i < want.length; i++) {
            const b = await again.readBlock(vdi, i);
            expect([b[0], b[BLOCK_SIZE - 1]], `kill after ${killAfterMs} ms: ${vdi} block ${i}`).toEqual([
              want[i],
              want[i],
            ]);
          }
      };
      await read();
      await again.coalesce();
      expect(again.chainLength('disk')).toBe(2);
      await read();
      await again.idle();
      // no file left behind for a layer the state no longer names
      const layers = new Set(again.dump().layers.map((l) => `${l.id}.blocks`));
      expect((await readdir(again.dir)).filter((f) => !layers.has(f))).toEqual([]);
      await again.close();
    }
  });
});
