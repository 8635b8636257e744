import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BlockSource } from '../../formats/vhd';
import { VHD_BLOCK_SIZE } from '../../formats/vhd';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function envNumber(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${v}`);
  return n;
}

export async function benchDir(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const base = process.env.XCPB_BENCH_DIR ?? tmpdir();
  const dir = await mkdtemp(path.join(base, 'xcpb-bench-formats-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Every `step`-th block over the disk, `count` of them (a deterministic spread). */
export function spreadBlocks(totalBlocks: number, count: number, offset = 0): number[] {
  const out = new Set<number>();
  for (let k = 0; k < count; k++) out.add((Math.floor((k * totalBlocks) / count) + offset) % totalBlocks);
  return [...out].sort((a, b) => a - b);
}

/**
 * A synthetic disk whose blocks are generated, not stored: one random 2 MiB pattern with the block
 * index stamped in, so the generator costs next to nothing and no disk is held in memory.
 */
export function syntheticSource(size: number, blocks: number[], salt = 0): BlockSource {
  const pattern = randomBytes(VHD_BLOCK_SIZE);
  return {
    size,
    blocks,
    async readBlock(i: number): Promise<Buffer> {
      const b = Buffer.from(pattern);
      b.writeUInt32BE(i, 0);
      b.writeUInt32BE(salt, 4);
      return b;
    },
  };
}

export async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, value };
}

export function maxRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export function report(title: string, rows: [string, string][]): void {
  console.log(`\n${title}`);
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
}

export function rate(bytes: number, ms: number): string {
  return `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
}
