import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ChainBackup,
  decideRetention,
  planChainRetention,
  type RetentionCandidate,
  type VhdLink,
} from '../../core/retention';

const candidateArb = fc.record({
  timestamp: fc.integer({ min: Date.UTC(2025, 0, 1), max: Date.UTC(2027, 0, 1) }),
  scheduleId: fc.constantFrom('nightly', 'weekly'),
  mode: fc.constantFrom<'delta' | 'full'>('delta', 'full'),
  ok: fc.boolean(),
});

const policyArb = fc.record({
  remote: fc.integer({ min: 1, max: 6 }),
  longTerm: fc.record(
    {
      daily: fc.integer({ min: 0, max: 5 }),
      weekly: fc.integer({ min: 0, max: 4 }),
      monthly: fc.integer({ min: 0, max: 3 }),
      yearly: fc.integer({ min: 0, max: 2 }),
    },
    { requiredKeys: [] },
  ),
  timeZone: fc.constantFrom('UTC', 'Europe/Paris', 'America/New_York', 'Australia/Lord_Howe'),
});

describe('decideRetention properties', () => {
  it('partitions the input, keeps the newest good backup, keeps only good ones of its schedule', () => {
    fc.assert(
      fc.property(fc.array(candidateArb, { maxLength: 40 }), policyArb, (raw, p) => {
        const backups: RetentionCandidate[] = raw.map((b, i) => ({ ...b, id: `b${i}` }));
        const policy = { ...p, scheduleId: 'nightly', mode: 'delta' as const };
        const d = decideRetention(backups, policy);

        const kept = d.keep.map((k) => k.id);
        const removed = d.remove.map((r) => r.id);
        expect([...kept, ...removed].sort()).toEqual(backups.map((b) => b.id).sort());
        expect(new Set([...kept, ...removed]).size).toBe(backups.length);
        for (const k of d.keep) expect(k.reasons.length).toBeGreaterThan(0);

        const ours = backups.filter((b) => b.scheduleId === 'nightly' && b.mode === 'delta');
        const others = backups.filter((b) => !ours.includes(b));
        for (const b of others) expect(kept).toContain(b.id);
        for (const b of ours.filter((b) => !b.ok)) expect(removed).toContain(b.id);

        const good = ours
          .filter((b) => b.ok)
          .sort((a, b) => b.timestamp - a.timestamp || (a.id < b.id ? 1 : -1));
        for (const b of good.slice(0, policy.remote)) expect(kept).toContain(b.id);
        // nothing of ours beyond the last N is kept without a long-term reason
        for (const k of d.keep.filter((k) => ours.some((b) => b.id === k.id))) {
          expect(
            k.reasons.some((r) => r.startsWith('last ') || /^(daily|weekly|monthly|yearly) /.test(r)),
          ).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

// A VM's disks: each backup has one VHD per disk; each VHD is a full or a delta of the previous one.
const chainArb = fc
  .record({
    disks: fc.integer({ min: 1, max: 3 }),
    steps: fc.array(
      fc.record({
        fullOn: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
        remove: fc.boolean(),
        // metadata left stale by an earlier run that crashed between a merge and its metadata update
        staleFlag: fc.boolean(),
      }),
      {
        minLength: 1,
        maxLength: 14,
      },
    ),
    orphans: fc.array(fc.integer({ min: 0, max: 13 }), { maxLength: 3 }),
  })
  .map(({ disks, steps, orphans }) => {
    const backups: ChainBackup[] = [];
    const vhds: VhdLink[] = [];
    const remove: string[] = [];
    steps.forEach((step, i) => {
      const name = `t${String(i).padStart(2, '0')}`;
      const paths: string[] = [];
      for (let d = 0; d < disks; d++) {
        const path = `disk${d}/${name}.vhd`;
        vhds.push({
          path,
          parent: i === 0 || step.fullOn[d] ? null : `disk${d}/t${String(i - 1).padStart(2, '0')}.vhd`,
        });
        paths.push(path);
      }
      // some VHDs are orphans already (their metadata deleted by an interrupted earlier run)
      if (!orphans.includes(i)) {
        const differencing = Object.fromEntries(
          paths.map((path) => [
            path,
            (vhds.find((v) => v.path === path)!.parent !== null) !== step.staleFlag,
          ]),
        );
        backups.push({ id: name, vhds: paths, differencing });
        if (step.remove) remove.push(name);
      }
    });
    return { backups, vhds, remove };
  });

/** Replays a plan on an in-memory remote, checking after every step that kept backups stay readable. */
function replay(input: { backups: ChainBackup[]; vhds: VhdLink[]; remove: string[] }) {
  const plan = planChainRetention(input);
  const files = new Map(input.vhds.map((v) => [v.path, v.parent]));
  const metadata = new Set(input.backups.map((b) => b.id));
  const flags = new Map(
    input.backups.flatMap((b) => b.vhds.map((vhd) => [`${b.id} ${vhd}`, b.differencing?.[vhd]] as const)),
  );
  const flagsOf = (b: ChainBackup) =>
    Object.fromEntries(b.vhds.map((vhd) => [vhd, flags.get(`${b.id} ${vhd}`)!]));
  const kept = input.backups.filter((b) => !input.remove.includes(b.id));
  const wasReadable = (vhd: string) => {
    for (let p: string | null | undefined = vhd; p !== null; p = files.get(p)) {
      if (p === undefined || !files.has(p)) return false;
    }
    return true;
  };
  const readableBefore = new Map(kept.flatMap((b) => b.vhds).map((v) => [v, wasReadable(v)]));
  const checkKeptReadable = () => {
    for (const b of kept) {
      expect(metadata.has(b.id)).toBe(true);
      for (const vhd of b.vhds)
        if (readableBefore.get(vhd)) expect(wasReadable(vhd), `${b.id} ${vhd}`).toBe(true);
    }
  };
  for (const op of plan.operations) {
    switch (op.kind) {
      case 'merge':
        expect(files.get(op.child)).toBe(op.parent);
        expect(files.has(op.parent)).toBe(true);
        files.set(op.child, files.get(op.parent)!);
        files.delete(op.parent);
        break;
      case 'update-metadata':
        expect(op.differencing).toBe(files.get(op.vhd) !== null);
        flags.set(`${op.backupId} ${op.vhd}`, op.differencing);
        break;
      case 'delete-backup':
        expect(input.remove).toContain(op.backupId);
        metadata.delete(op.backupId);
        break;
      case 'delete-vhd':
        expect(files.has(op.path)).toBe(true);
        files.delete(op.path);
        break;
    }
    checkKeptReadable();
  }
  // In the end every kept backup's metadata tells the truth about its disks.
  for (const b of kept) {
    for (const vhd of b.vhds) {
      if (files.has(vhd)) expect(flags.get(`${b.id} ${vhd}`), `${b.id} ${vhd}`).toBe(files.get(vhd) !== null);
    }
  }
  return { files, metadata, kept: kept.map((b) => ({ ...b, differencing: flagsOf(b) })) };
}

describe('planChainRetention properties', () => {
  it('never leaves a kept delta without its parent, at any step, and leaves no unneeded VHD', () => {
    fc.assert(
      fc.property(chainArb, (input) => {
        const { files, metadata, kept } = replay(input);
        expect([...metadata].sort()).toEqual(kept.map((b) => b.id).sort());
        // every VHD left is referenced by a kept backup or is an ancestor of one
        const needed = new Set<string>();
        for (const vhd of kept.flatMap((b) => b.vhds)) {
          for (let p: string | null | undefined = vhd; p != null && files.has(p); p = files.get(p))
            needed.add(p);
        }
        expect([...files.keys()].sort()).toEqual([...needed].sort());
      }),
      { numRuns: 400 },
    );
  });

  it('is idempotent: replanning the end state plans nothing', () => {
    fc.assert(
      fc.property(chainArb, (input) => {
        const { files, kept } = replay(input);
        const vhds = [...files].map(([path, parent]) => ({ path, parent }));
        expect(planChainRetention({ backups: kept, vhds, remove: [] }).operations).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });
});
