/**
 * The simulator is never the bottleneck: its export rates over loopback — raw, VHD, XVA, XVA with
 * zstd (compressed as XAPI does: level 3, one thread) — against reading the same bytes from disk in
 * the same run (`cat` of the disk's block file; for zstd, `cat | zstd -3 -T1`, the compressor's own
 * cost). Every other benchmark that exports from the simulator measures a curl of its own export as
 * a baseline; this one shows how far the simulator's side is from the disk's speed.
 * Exports are downloaded by curl (a separate process, as a real client is), each twice, best kept.
 * The simulator's CPU seconds per GiB exported are recorded too: unlike times, they hold on a busy
 * machine.
 * Run: node --import tsx bench/simulator-export.ts
 * Env: XCPB_BENCH_DISK (default 4GiB, all of it random data), XCPB_BENCH_DIR (data folder, default a
 * temp folder).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XAPI_COMPRESSION } from '../simulator/http/export-xva';
import { startSimulator } from '../simulator/index';
import { parseSize } from '../simulator/scenario';
import { connectXapi } from '../xapi';
import { recordResult } from './lib/results';

const BENCH = 'simulator-export';
const BLOCK = 2 * 1024 * 1024;
const ROUNDS = 2;
const size = Math.ceil(parseSize(process.env.XCPB_BENCH_DISK ?? '4GiB') / BLOCK) * BLOCK;
const mib = (n: number) => (n / 1024 ** 2).toFixed(0);

/** Runs a shell pipeline; its duration in seconds and what it printed. */
function sh(script: string, ...args: string[]): Promise<{ s: number; out: string }> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', script, 'sh', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (c) => {
      out += c;
    });
    p.on('exit', (code) =>
      code === 0
        ? resolve({ s: (performance.now() - t) / 1000, out })
        : reject(new Error(`${script} exited ${code}`)),
    );
  });
}

if (spawnSync('curl', ['--version']).status !== 0) throw new Error('curl is needed (Debian package curl)');
const zstd = XAPI_COMPRESSION.zstd;
const dataDir = await mkdtemp(join(process.env.XCPB_BENCH_DIR ?? tmpdir(), 'xcpb-bench-export-'));
const sim = await startSimulator({
  dataDir,
  scenario: {
    pools: [
      {
        id: 'bench',
        credentials: [{ username: 'root', password: 'bench' }],
        srs: [{ id: 'local', name: 'Local', size: size * 2 + 1024 ** 3 }],
        vms: [
          {
            name: 'big',
            power: 'Halted',
            disks: [{ size, content: { type: 'random', seed: 'bench' } }],
          },
        ],
      },
    ],
  },
});
try {
  const pool = sim.pool('bench');
  const xapi = await connectXapi({ url: pool.url, username: pool.username, password: pool.password });
  const vm = Object.entries(await xapi.getAllRecords<{ name_label: string }>('VM')).find(
    ([, r]) => r.name_label === 'big',
  )![0];
  const vdi = await xapi.call<string>('VBD.get_VDI', (await xapi.call<string[]>('VM.get_VBDs', vm))[0]);
  const session = xapi.sessionId;
  const blocksDir = join(dataDir, 'bench', 'blocks');
  const layer = readdirSync(blocksDir)
    .map((f) => join(blocksDir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (statSync(layer).size !== size)
    throw new Error(`layer file ${layer} holds ${statSync(layer).size} bytes, expected ${size}`);
  console.log(`disk: ${mib(size)} MiB of random data; simulator data in ${dataDir}`);

  const curl = (path: string) =>
    sh(`curl -sS --fail -o /dev/null -w '%{size_download}' "$1"`, `${pool.url}${path}&session_id=${session}`);
  const cases = [
    { figure: 'raw export', path: `/export_raw_vdi?vdi=${vdi}&format=raw`, base: 'cat' },
    { figure: 'VHD export', path: `/export_raw_vdi?vdi=${vdi}&format=vhd`, base: 'cat' },
    { figure: 'XVA export', path: `/export?ref=${vm}&use_compression=false`, base: 'cat' },
    { figure: 'XVA export, zstd', path: `/export?ref=${vm}&use_compression=zstd`, base: 'zstd' },
  ] as const;
  const baselines = {
    cat: { name: 'cat of the disk file', run: () => sh('cat "$1" > /dev/null', layer) },
    zstd: {
      name: `cat | zstd -${zstd.level} -T${zstd.threads}`,
      run: () => sh(`cat "$1" | zstd -q -${zstd.level} -T${zstd.threads} -c > /dev/null`, layer),
    },
  };
  const best = new Map<string, number>();
  const keep = (k: string, s: number) => best.set(k, Math.min(best.get(k) ?? Infinity, s));
  // the simulator runs in this process: its CPU seconds per export do not depend on the machine's load
  const cpu = new Map<string, number>();
  const cpuSeconds = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [k, b] of Object.entries(baselines)) keep(k, (await b.run()).s);
    for (const c of cases) {
      const before = cpuSeconds();
      const r = await curl(c.path);
      cpu.set(c.figure, Math.min(cpu.get(c.figure) ?? Infinity, cpuSeconds() - before));
      if (Number(r.out) < size) throw new Error(`${c.figure} gave ${r.out} bytes, less than the disk`);
      keep(c.figure, r.s);
      console.log(`round ${round + 1}: ${c.figure} ${r.s.toFixed(2)} s (${mib(Number(r.out))} MiB)`);
    }
  }
  for (const c of cases) {
    const b = baselines[c.base];
    const s = best.get(c.figure)!;
    recordResult({
      bench: BENCH,
      figure: `${c.figure} (curl, ${mib(size)} MiB disk)`,
      value: s,
      unit: 's',
      baseline: b.name,
      baselineValue: best.get(c.base)!,
    });
    console.log(`    = ${(size / 1024 ** 2 / s).toFixed(0)} MiB/s of disk data`);
  }
  for (const c of cases) {
    recordResult({
      bench: BENCH,
      figure: `simulator CPU per GiB, ${c.figure}`,
      value: cpu.get(c.figure)! / (size / 1024 ** 3),
      unit: 's',
    });
  }
  recordResult({
    bench: BENCH,
    figure: 'peak RSS of the simulator (in this process)',
    value: process.resourceUsage().maxRSS / 1024,
    unit: 'MiB',
  });
  await xapi.logout();
} finally {
  await sim.close();
  await rm(dataDir, { recursive: true, force: true });
}
