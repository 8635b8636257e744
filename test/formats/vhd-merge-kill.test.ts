import { spawn } from 'node:child_process';
import { access, mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chainBlockSource,
  createVhdStream,
  mergeVhdIntoParent,
  openVhdChain,
  openVhdFile,
  writeRawFile,
} from '../../formats/vhd';
import { buildChain, expectRawEquals, judge, MemDisk, makeTmp, repoRoot, writeStream } from './helpers';

let tmp: { dir: string; cleanup(): Promise<void> };
beforeAll(async () => {
  tmp = await makeTmp();
});
afterAll(async () => {
  await tmp.cleanup();
});

const MiB = 1024 * 1024;
const worker = path.join(repoRoot, 'test/formats/fixtures/merge-worker.ts');

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs the merge in a child process and SIGKILLs it at a random progress point, after a random delay,
 * or a few random milliseconds after it announces a random step (blocks / identity / rename).
 */
function runAndKill(
  child: string,
  mode: 'progress' | 'delay' | 'step',
  maxDelayMs = 120,
): Promise<{ completed: boolean; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      ['--import', 'tsx', worker, child, String(1 + Math.floor(Math.random() * 2))],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const lines: string[] = [];
    let killAt = -1;
    const targetStep = ['blocks', 'identity', 'rename'][Math.floor(Math.random() * 3)];
    let buf = '';
    let stderr = '';
    const kill = () => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    };
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (line === 'ready' && mode === 'delay') setTimeout(kill, Math.random() * maxDelayMs);
        if (mode === 'step' && line === `step ${targetStep}`) setTimeout(kill, Math.random() * 4);
        const m = /^progress (\d+) (\d+)$/.exec(line);
        if (m && mode === 'progress') {
          if (killAt < 0) killAt = Math.floor(Math.random() * (Number(m[2]) + 1));
          if (Number(m[1]) >= killAt) kill();
        }
        nl = buf.indexOf('\n');
      }
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (signal === 'SIGKILL' || code === 0) resolve({ completed: code === 0, lines });
      else reject(new Error(`merge worker exited ${code}: ${stderr}`));
    });
  });
}

describe('merge killed with SIGKILL', () => {
  it('24 trials: after every kill the chain reads the right disk, and the merge resumes to a correct chain', async () => {
    let midMerge = 0;
    const steps: Record<string, number> = {};
    for (let trial = 0; trial < 24; trial++) {
      const dir = path.join(tmp.dir, `t${trial}`);
      await mkdir(dir);
      const { names, disk } = await buildChain(dir, 14 * MiB + 512 * (trial + 1), 2, { changeRatio: 0.7 });
      const [base, d1, tip] = names.map((n) => path.join(dir, n));
      const { completed } = await runAndKill(d1, (['progress', 'delay', 'step'] as const)[trial % 3]);
      const stateFiles = (await readdir(dir)).filter((n) => n.endsWith('.merge.json'));
      const baseLeft = await exists(base);
      if (stateFiles.length > 0) {
        midMerge++;
        const { step } = JSON.parse(await readFile(path.join(dir, stateFiles[0]), 'utf8'));
        steps[step] = (steps[step] ?? 0) + 1;
      }
      // The chain must read as the right disk right now, interrupted or not.
      const chain = await openVhdChain(tip);
      await writeRawFile(chainBlockSource(chain), path.join(dir, 'killed.raw'));
      await chain.close();
      await expectRawEquals(path.join(dir, 'killed.raw'), disk);
      // qemu-img agrees too (every third trial, to keep the suite short)
      const layers = baseLeft ? [base, d1, tip] : [d1, tip];
      if (trial % 3 === 0) {
        await judge(path.join(dir, 'killed.qemu.raw'), ...layers);
        await expectRawEquals(path.join(dir, 'killed.qemu.raw'), disk);
      }
      // Resume unless the killed run had finished everything.
      if (!completed && (baseLeft || stateFiles.length > 0)) await mergeVhdIntoParent(d1);
      expect(await exists(base)).toBe(false);
      expect((await readdir(dir)).filter((n) => n.endsWith('.merge.json') || n.endsWith('.tmp'))).toEqual([]);
      const after = await openVhdChain(tip);
      expect(after.files.map((f) => path.basename(f.path))).toEqual([names[2], names[1]]);
      await writeRawFile(chainBlockSource(after), path.join(dir, 'resumed.raw'));
      await after.close();
      await expectRawEquals(path.join(dir, 'resumed.raw'), disk);
      if (trial % 3 === 0) {
        await judge(path.join(dir, 'resumed.qemu.raw'), d1, tip);
        await expectRawEquals(path.join(dir, 'resumed.qemu.raw'), disk);
      }
    }
    console.log(`kill trials interrupted mid-merge: ${midMerge}/24, steps at kill: ${JSON.stringify(steps)}`);
    expect(midMerge).toBeGreaterThan(0);
  });
  it('8 trials on a child larger than the parent BAT room (blocks move before the merge): killed, still right, resumed', async () => {
    for (let trial = 0; trial < 8; trial++) {
      const dir = path.join(tmp.dir, `g${trial}`);
      await mkdir(dir);
      const base = new MemDisk(256 * MiB);
      for (const i of [0, 1, 2, 60, 127]) base.randomBlock(i);
      const disk = new MemDisk(264 * MiB);
      for (const [k, v] of base.data) disk.data.set(k, Buffer.from(v));
      const names = ['20261101T000000Z.vhd', '20261102T000000Z.vhd', '20261103T000000Z.vhd'];
      const [b, d1, tip] = names.map((n) => path.join(dir, n));
      const bu = crypto.randomUUID();
      const du = crypto.randomUUID();
      await writeStream(createVhdStream(base, { uuid: bu }), b);
      for (const i of [0, 128, 130]) disk.randomBlock(i);
      await writeStream(
        createVhdStream(disk.subset([0, 128, 130]), {
          uuid: du,
          parent: { uuid: bu, name: names[0], timestamp: new Date() },
        }),
        d1,
      );
      for (const i of [2, 131]) disk.randomBlock(i);
      await writeStream(
        createVhdStream(disk.subset([2, 131]), {
          parent: { uuid: du, name: names[1], timestamp: new Date() },
        }),
        tip,
      );
      const { completed } = await runAndKill(d1, trial % 2 === 0 ? 'delay' : 'progress', 40);
      // Compare block by block through the chain (no 264 MiB raw files per trial).
      const readAll = async (label: string) => {
        const chain = await openVhdChain(tip);
        expect(chain.size).toBe(disk.size);
        for (const i of new Set([...chain.blocks(), ...disk.blocks])) {
          expect((await chain.readBlock(i)).equals(await disk.readBlock(i)), `${label}: block ${i}`).toBe(
            true,
          );
        }
        await chain.close();
      };
      await readAll('killed');
      const stateLeft = (await readdir(dir)).some((n) => n.endsWith('.merge.json'));
      if (!completed && ((await exists(b)) || stateLeft)) await mergeVhdIntoParent(d1);
      expect(await exists(b)).toBe(false);
      await readAll('resumed');
      const merged = await openVhdFile(d1);
      expect(merged.header!.maxTableEntries).toBe(132);
      await merged.close();
      if (trial === 7) {
        await judge(path.join(dir, 'resumed.qemu.raw'), d1, tip);
        await expectRawEquals(path.join(dir, 'resumed.qemu.raw'), disk);
      }
    }
  });
});
