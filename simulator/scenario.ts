import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { z } from 'zod';

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** `64MiB`, `1.5 GiB`, or a number of bytes. */
export function parseSize(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB)?\s*$/.exec(v);
  if (!m) throw new Error(`not a size: ${JSON.stringify(v)} (use bytes or e.g. "64MiB")`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 'B']);
}

const size = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  try {
    return parseSize(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

const content = z.union([
  z.literal('zeros'),
  z.object({ type: z.literal('zeros') }),
  z.object({
    type: z.literal('random'),
    seed: z.union([z.number(), z.string()]).default(1),
    blocks: z.number().int().nonnegative().optional(),
  }),
  z.object({ type: z.literal('ext4'), folder: z.string() }),
  // a raw disk image (partition table, filesystems…), path relative to the scenario file
  z.object({ type: z.literal('image'), path: z.string() }),
]);

const disk = z.object({
  name: z.string().optional(),
  size,
  sr: z.string().optional(),
  content: content.default('zeros'),
});

const vm = z.object({
  name: z.string(),
  description: z.string().default(''),
  tags: z.array(z.string()).default([]),
  power: z.enum(['Running', 'Halted', 'Suspended', 'Paused']).default('Halted'),
  memory: size.default(256 * 1024 * 1024),
  vcpus: z.number().int().positive().default(1),
  template: z.boolean().default(false),
  other_config: z.record(z.string(), z.string()).default({}),
  blocked_operations: z.record(z.string(), z.string()).default({}),
  disks: z.array(disk).default([]),
  networks: z.array(z.string()).default([]),
  uuid: z.string().uuid().optional(),
});

const pool = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]+$/, 'pool id: letters, digits, - and _'),
  name: z.string().optional(),
  port: z.number().int().min(0).max(65535).optional(),
  credentials: z.array(z.object({ username: z.string(), password: z.string() })).min(1),
  hosts: z
    .array(
      z.object({
        name: z.string(),
        address: z.string().default('127.0.0.1'),
        /** host.cpu_info fields (vendor, modelname, features…): a RAM replica resumes only on a like CPU */
        cpu: z.record(z.string(), z.string()).optional(),
      }),
    )
    .min(1)
    .default([{ name: 'host-1', address: '127.0.0.1' }]),
  srs: z
    .array(
      z.object({
        id: z.string(),
        name: z.string(),
        size,
        type: z.string().default('ext'),
        default: z.boolean().default(false),
        uuid: z.string().uuid().optional(),
      }),
    )
    .min(1),
  networks: z
    .array(z.object({ id: z.string(), name: z.string(), bridge: z.string().optional() }))
    .default([]),
  vms: z.array(vm).default([]),
});

export const scenarioSchema = z.object({ pools: z.array(pool).min(1) });
export type Scenario = z.input<typeof scenarioSchema>;
export type ParsedScenario = z.output<typeof scenarioSchema>;
export type PoolScenario = ParsedScenario['pools'][number];

export const DEMO_SCENARIO = join(dirname(fileURLToPath(import.meta.url)), 'scenarios', 'demo.yaml');

/** Validates a scenario; errors name the path of the bad field. */
export function parseScenario(input: unknown, baseDir = process.cwd()): ParsedScenario {
  const r = scenarioSchema.safeParse(input);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`invalid scenario: ${msg}`);
  }
  const ids = new Set<string>();
  for (const p of r.data.pools) {
    if (ids.has(p.id)) throw new Error(`invalid scenario: pool id ${p.id} is used twice`);
    ids.add(p.id);
    const srIds = new Set(p.srs.map((s) => s.id));
    const netIds = new Set(p.networks.map((n) => n.id));
    for (const v of p.vms) {
      for (const d of v.disks) {
        if (d.sr !== undefined && !srIds.has(d.sr))
          throw new Error(`invalid scenario: VM ${v.name} disk on unknown SR ${d.sr}`);
        if (typeof d.content === 'object' && d.content.type === 'ext4' && !isAbsolute(d.content.folder)) {
          d.content.folder = resolve(baseDir, d.content.folder);
        }
        if (typeof d.content === 'object' && d.content.type === 'image' && !isAbsolute(d.content.path)) {
          d.content.path = resolve(baseDir, d.content.path);
        }
      }
      for (const n of v.networks)
        if (!netIds.has(n)) throw new Error(`invalid scenario: VM ${v.name} on unknown network ${n}`);
    }
  }
  return r.data;
}

/** A scenario from an object, a YAML/JSON file path, or `demo`. */
export function loadScenario(src: Scenario | string): ParsedScenario {
  if (typeof src !== 'string') return parseScenario(src);
  const path = src === 'demo' ? DEMO_SCENARIO : resolve(src);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read scenario ${path}: ${(e as Error).message}`);
  }
  return parseScenario(YAML.parse(text), dirname(path));
}
