// Merges both tools can resume: the merge state file is Xen Orchestra's (`.<parent>.merge.json`,
// @xen-orchestra/backup-archive MergeRemoteDisk: child/parent uuid, chain relative to the state file,
// currentBlock = first child block not merged yet, mergedDataSize, step mergeBlocks | cleanup,
// diskSize; older vhd-lib: header checksums and step cleanupVhds). The fixtures below are what XO
// leaves on disk when it is stopped at each of its steps; qemu-img judges every result.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vhdCommand } from '../../cli/vhd';
import {
  createVhdStream,
  finishInterruptedMerges,
  mergeVhdIntoParent,
  openVhdChain,
  openVhdFile,
  VHD_BLOCK_SIZE,
} from '../../formats/vhd';
import { createLocalRemote } from '../../remotes/local';
import type { Remote } from '../../remotes/remote';
import { finishInterruptedMergesOnRemote } from '../../remotes/vhd-merge';
import { openRemoteChain } from '../../remotes/vhd-store';
import { judge, MemDisk, makeTmp, writeStream } from './helpers';

let tmp: { dir: string; cleanup(): Promise<void> };
beforeAll(async () => {
  tmp = await makeTmp();
});
afterAll(() => tmp.cleanup());

const MiB = 1024 * 1024;
const SIZE = 20 * MiB; // 10 blocks
const P = '20261101T030000Z.vhd';
const C = '20261102T030000Z.vhd';
const G = '20261103T030000Z.vhd';
const T = (d: number) => new Date(Date.UTC(2026, 10, d, 3));
const uuids = {
  p: '11111111-1111-4111-8111-111111111111',
  c: '22222222-2222-4222-8222-222222222222',
  g: '33333333-3333-4333-8333-333333333333',
};

/** A base, a delta over it, and a delta over that (so the merged file must keep serving a child). */
async function chainIn(name: string) {
  const dir = path.join(tmp.dir, name);
  await rm(dir, { recursive: true, force: true });
  await (await import('node:fs/promises')).mkdir(dir);
  const base = new MemDisk(SIZE);
  for (const i of [0, 1, 3, 4, 8]) base.randomBlock(i);
  const childBlocks = [1, 2, 4, 6, 7, 9];
  const atChild = base.clone();
  for (const i of childBlocks) atChild.randomBlock(i);
  const atGrandchild = atChild.clone();
  atGrandchild.randomBlock(5);
  const parentRef = (uuid: string, n: string, d: number) => ({ uuid, name: n, timestamp: T(d) });
  await writeStream(createVhdStream(base, { uuid: uuids.p, timestamp: T(1) }), path.join(dir, P));
  await writeStream(
    createVhdStream(atChild.subset(childBlocks), {
      uuid: uuids.c,
      timestamp: T(2),
      parent: parentRef(uuids.p, P, 1),
    }),
    path.join(dir, C),
  );
  await writeStream(
    createVhdStream(atGrandchild.subset([5]), {
      uuid: uuids.g,
      timestamp: T(3),
      parent: parentRef(uuids.c, C, 2),
    }),
    path.join(dir, G),
  );
  return { dir, base, atChild, atGrandchild, childBlocks };
}

const cli = (...argv: string[]) => vhdCommand(argv, { out: () => {}, err: (t) => process.stderr.write(t) });

async function expectJudged(dir: string, files: string[], disk: MemDisk) {
  const out = path.join(dir, 'judged.raw');
  await judge(out, ...files.map((f) => path.join(dir, f)));
  expect((await readFile(out)).equals(disk.read(0, SIZE))).toBe(true);
}

describe("Xen Orchestra's merge state", () => {
  it('an XO merge stopped mid-blocks is finished by `xcpb vhd merge`, and its chain reads right meanwhile', async () => {
    const { dir, base, atChild, atGrandchild, childBlocks } = await chainIn('xo-blocks');
    // XO merged the child's blocks below currentBlock into the parent (parent keeps its identity).
    const currentBlock = 6;
    const partly = base.clone();
    for (const i of childBlocks.filter((b) => b < currentBlock))
      partly.data.set(i, Buffer.from(atChild.data.get(i)!));
    await writeStream(createVhdStream(partly, { uuid: uuids.p, timestamp: T(1) }), path.join(dir, P));
    await writeFile(
      path.join(dir, `.${P}.merge.json`),
      JSON.stringify({
        child: { uuid: uuids.c },
        parent: { uuid: uuids.p },
        chain: [`./${P}`, `./${C}`],
        currentBlock,
        mergedDataSize: 3 * VHD_BLOCK_SIZE,
        step: 'mergeBlocks',
        diskSize: 0,
      }),
    );
    const meanwhile = await openVhdChain(path.join(dir, G));
    expect(meanwhile.files.length).toBe(3);
    await meanwhile.close();
    expect(await cli('merge', path.join(dir, C))).toBe(0);
    expect((await readdir(dir)).sort()).toEqual([C, G]);
    await expectJudged(dir, [C], atChild);
    await expectJudged(dir, [C, G], atGrandchild);
    expect((await openVhdFile(path.join(dir, C)).then(async (f) => [f.uuid, await f.close()]))[0]).toBe(
      uuids.c,
    );
  });

  for (const variant of ['cleanup', 'cleanupVhds'] as const) {
    it(`an XO merge stopped in ${variant} after the child was removed: chain readable, merge finished`, async () => {
      const { dir, atChild, atGrandchild } = await chainIn(`xo-${variant}`);
      // XO's last steps: the parent took every block and the child's identity, then the child was
      // unlinked (removeUnused) and the process died before the rename.
      await writeStream(createVhdStream(atChild, { uuid: uuids.c, timestamp: T(2) }), path.join(dir, P));
      await rm(path.join(dir, C));
      const older = variant === 'cleanupVhds'; // vhd-lib's format: header checksums, no uuids
      await writeFile(
        path.join(dir, `.${P}.merge.json`),
        JSON.stringify({
          child: older ? { header: 123456 } : { uuid: uuids.c },
          parent: older ? { header: 654321 } : { uuid: uuids.p },
          chain: [P, C],
          currentBlock: 9,
          mergedDataSize: 6 * VHD_BLOCK_SIZE,
          step: variant,
          ...(older ? {} : { diskSize: 0 }),
        }),
      );
      const meanwhile = await openVhdChain(path.join(dir, G)); // reads through the stand-in parent
      expect(meanwhile.files.map((f) => path.basename(f.path))).toEqual([G, P]);
      await meanwhile.close();
      // retention's path (it finishes every interrupted merge of a chain folder first), or the CLI's
      if (older) expect(await finishInterruptedMerges(dir)).toEqual([C]);
      else expect(await cli('merge', path.join(dir, C))).toBe(0);
      expect((await readdir(dir)).sort()).toEqual([C, G]);
      await expectJudged(dir, [C, G], atGrandchild);
    });
  }

  it('our merge stopped at each step leaves a state file XO reads the way it reads its own', async () => {
    for (const stopAt of ['blocks', 'rename'] as const) {
      const { dir, atChild, atGrandchild, childBlocks } = await chainIn(`ours-${stopAt}`);
      let batches = 0;
      const stopped = await mergeVhdIntoParent(path.join(dir, C), {
        batchBlocks: 2,
        onProgress: () => {
          if (stopAt === 'blocks' && ++batches === 3) throw new Error('killed');
        },
        onStep: (step) => {
          if (stopAt === 'rename' && step === 'rename') throw new Error('killed');
        },
      }).catch((e: Error) => e.message);
      expect(stopped).toBe('killed');
      const state = JSON.parse(await readFile(path.join(dir, `.${P}.merge.json`), 'utf8'));
      expect(Object.keys(state).sort()).toEqual([
        'chain',
        'child',
        'currentBlock',
        'diskSize',
        'mergedDataSize',
        'parent',
        'step',
      ]);
      expect(state.chain.map((p: string) => path.resolve(dir, p))).toEqual([
        path.join(dir, P),
        path.join(dir, C),
      ]);
      expect(state.child).toEqual({ uuid: uuids.c });
      expect(state.parent).toEqual({ uuid: uuids.p });
      expect(typeof state.mergedDataSize).toBe('number');
      const parent = await openVhdFile(path.join(dir, P));
      try {
        if (stopAt === 'blocks') {
          expect(state.step).toBe('mergeBlocks');
          // XO resumes from currentBlock: every child block below it must already be in the parent.
          expect(state.currentBlock).toBe(childBlocks[4]);
          for (const i of childBlocks.filter((b) => b < state.currentBlock)) {
            expect((await parent.readBlock(i)).equals(atChild.data.get(i)!), `block ${i}`).toBe(true);
          }
          expect(parent.uuid).toBe(uuids.p);
        } else {
          // XO's cleanup step: the parent already is the merged disk, renamed over the child next.
          expect(state.step).toBe('cleanup');
          expect(parent.uuid).toBe(uuids.c);
        }
      } finally {
        await parent.close();
      }
      await mergeVhdIntoParent(path.join(dir, C));
      expect((await readdir(dir)).sort()).toEqual([C, G]);
      await expectJudged(dir, [C, G], atGrandchild);
    }
  });

  it('through a Remote (ranged reads, no local path): the chain reads through the stand-in and the merge is finished', async () => {
    const { dir, atChild, atGrandchild } = await chainIn('xo-remote-cleanup');
    await writeStream(createVhdStream(atChild, { uuid: uuids.c, timestamp: T(2) }), path.join(dir, P));
    await rm(path.join(dir, C));
    await writeFile(
      path.join(dir, `.${P}.merge.json`),
      JSON.stringify({
        child: { uuid: uuids.c },
        parent: { uuid: uuids.p },
        chain: [P, C],
        currentBlock: 9,
        mergedDataSize: 6 * VHD_BLOCK_SIZE,
        step: 'cleanup',
        diskSize: 0,
      }),
    );
    const remote = createLocalRemote({ id: 'nas', root: dir });
    const meanwhile = await openRemoteChain(remote, G);
    expect(meanwhile.files.map((f) => f.path)).toEqual([G, P]);
    await meanwhile.close();
    // A remote that cannot rewrite in place refuses to guess around another tool's in-place merge.
    const objectStoreLike: Remote = Object.assign(Object.create(remote), { inPlace: undefined });
    await expect(finishInterruptedMergesOnRemote(objectStoreLike, '')).rejects.toThrow(
      `unfinished merge of ${C} into ${P}, left by another tool, needs a remote that rewrites files in place`,
    );
    expect((await readdir(dir)).sort()).toEqual([`.${P}.merge.json`, P, G]);
    // Retention's path (BackupRepository.applyRetention finishes each chain folder first).
    expect(await finishInterruptedMergesOnRemote(remote, '')).toEqual([C]);
    expect((await readdir(dir)).sort()).toEqual([C, G]);
    await expectJudged(dir, [C, G], atGrandchild);
  });
});
