/**
 * Export throughput of the simulator over loopback, raw and VHD, against `cat` of the same bytes
 * to /dev/null in the same run. Run: node --import tsx bench/simulator-export.ts
 * Env: XCPB_BENCH_DISK (default 4GiB), XCPB_BENCH_DIR (data folder, default a temp folder).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator } from '../simulator/index';
import { parseSize } from '../simulator/scenario';

const BLOCK = 2 * 1024 * 1024;
const size = Math.ceil(parseSize(process.env.XCPB_BENCH_DISK ?? '4GiB') / BLOCK) * BLOCK;
const gib = (n: number) => (n / 1024 ** 3).toFixed(2);
const mbps = (bytes: number, ms: number) => bytes / 1024 ** 2 / (ms / 1000);

async function time<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await f();
  return { ms: performance.now() - t, value };
}

function catToNull(file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', `cat "$1" > /dev/null`, 'sh', file], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`cat exited ${code}`))));
  });
}

/** Downloads with curl (a separate process, as a real client is), else with node:http in-process. */
function download(url: string): Promise<number> {
  if (haveCurl) {
    return new Promise((resolve, reject) => {
      const p = spawn('curl', ['-sS', '--fail', '-o', '/dev/null', '-w', '%{size_download}', url]);
      let out = '';
      p.stdout.on('data', (c) => {
        out += c;
      });
      p.on('exit', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`curl exited ${code}`))));
    });
  }
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
      });
      res.on('end', () => resolve(n));
      res.on('error', reject);
    }).on('error', reject);
  });
}

const haveCurl = spawnSync('curl', ['--version']).status === 0;
const dataDir = await mkdtemp(join(process.env.XCPB_BENCH_DIR ?? tmpdir(), 'xcpb-bench-export-'));
try {
  console.log(
    `disk: ${gib(size)} GiB of seeded random data, data dir ${dataDir}, client: ${haveCurl ? 'curl' : 'node:http'}`,
  );
  const setup = await time(() =>
    startSimulator({
      dataDir,
      scenario: {
        pools: [
          {
            id: 'bench',
            credentials: [{ username: 'root', password: 'bench' }],
            srs: [{ id: 'local', name: 'Local', size: size * 2 + 1024 ** 3 }],
            vms: [{ name: 'big', disks: [{ size, content: { type: 'random', seed: 'bench' } }] }],
          },
        ],
      },
    }),
  );
  const sim = setup.value;
  console.log(`setup (writing the disk): ${(setup.ms / 1000).toFixed(1)} s`);
  const pool = sim.pool('bench');
  const login = await fetch(`${pool.url}/jsonrpc`, {
    method: 'POST',
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'session.login_with_password',
      params: ['root', 'bench'],
    }),
  });
  const session = ((await login.json()) as { result: string }).result;
  const vdis = await fetch(`${pool.url}/jsonrpc`, {
    method: 'POST',
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'VDI.get_all', params: [session] }),
  });
  const vdi = ((await vdis.json()) as { result: string[] }).result[0];

  const blocksDir = join(dataDir, 'bench', 'blocks');
  const layer = readdirSync(blocksDir)
    .map((f) => join(blocksDir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (statSync(layer).size !== size)
    throw new Error(`layer file ${layer} holds ${statSync(layer).size} bytes, expected ${size}`);

  const rows: [string, number, number][] = [];
  for (let round = 0; round < 2; round++) {
    const cat = await time(() => catToNull(layer));
    const raw = await time(() =>
      download(`${pool.url}/export_raw_vdi?session_id=${session}&vdi=${vdi}&format=raw`),
    );
    const vhd = await time(() =>
      download(`${pool.url}/export_raw_vdi?session_id=${session}&vdi=${vdi}&format=vhd`),
    );
    if (raw.value !== size) throw new Error(`raw export gave ${raw.value} bytes, expected ${size}`);
    if (vhd.value < size) throw new Error(`vhd export gave ${vhd.value} bytes, less than the data`);
    rows.push(['cat', size, cat.ms], ['raw', raw.value, raw.ms], ['vhd', vhd.value, vhd.ms]);
    const base = mbps(size, cat.ms);
    console.log(
      `round ${round + 1}: cat ${base.toFixed(0)} MiB/s | raw ${mbps(raw.value, raw.ms).toFixed(0)} MiB/s (x${(
        mbps(raw.value, raw.ms) / base
      ).toFixed(
        2,
      )} of cat) | vhd ${mbps(vhd.value, vhd.ms).toFixed(0)} MiB/s (x${(mbps(vhd.value, vhd.ms) / base).toFixed(2)} of cat)`,
    );
  }
  console.log(
    `peak RSS (bench + simulator in one process): ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
  );
  await sim.close();
} finally {
  await rm(dataDir, { recursive: true, force: true });
}
