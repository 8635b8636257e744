/**
 * Data path of a backup, against baselines measured in the same run (issue 14, table rows 1–3):
 *  (a) delta backup (first run: every allocated block) of a disk half full, simulator → local remote,
 *      through Temporal, the workers, VHD re-identification and the fan-out writer, against curl of
 *      the same VHD export to a file + fsync; then a delta of ~5% changed blocks (a run ≤ 1.5 s);
 *  (b) a full (XVA) backup with zstd against curl of the same zstd export to a file (what the product
 *      controls), and against `curl raw export | zstd -1 > file` (the gap is the host's compressor).
 * Run: node --import tsx bench/backup-datapath.ts
 * Env: XCPB_BENCH_DISK (default 4GiB), XCPB_BENCH_DIR (where the data goes, default the temp folder),
 * XCPB_BENCH_PARTS (`delta`, `xva` or both, comma separated: default both; to measure one while working).
 * Each figure is recorded with recordResult (bench/lib/results.ts); per-step timings are printed.
 */
import { spawn } from 'node:child_process';
import type { RunReport } from '../core/run-report';
import { parseSize } from '../simulator/scenario';
import { connectXapi } from '../xapi';
import { mbps, mib, startBenchStack, timed } from './lib/backup-stack';
import { elapsedMs, recordResult } from './lib/results';

const BENCH = 'backup-datapath';

const BLOCK = 2 << 20;
const size = Math.ceil(parseSize(process.env.XCPB_BENCH_DISK ?? '4GiB') / BLOCK) * BLOCK;
const dataBlocks = Math.floor(size / BLOCK / 2);
const parts = new Set((process.env.XCPB_BENCH_PARTS ?? 'delta,xva').split(',').map((p) => p.trim()));
for (const p of parts)
  if (p !== 'delta' && p !== 'xva') throw new Error(`XCPB_BENCH_PARTS: unknown part "${p}" (delta, xva)`);

/** Where a run's time went, step by step (from the run report). */
function printSteps(report: RunReport): void {
  const vm = report.vms[0];
  const line = vm.steps
    .map(
      (s) =>
        `${s.name}${s.target ? `(${s.target.slice(0, 8)})` : ''} ${(elapsedMs(s.start, s.end) / 1000).toFixed(2)}s`,
    )
    .join(', ');
  console.log(
    `      steps: ${line}; VM total ${(elapsedMs(vm.start, vm.end) / 1000).toFixed(2)}s of run ${(elapsedMs(report.start, report.end) / 1000).toFixed(2)}s`,
  );
}

function sh(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${script} exited ${code}`))));
  });
}

/**
 * Removes a baseline's output, then waits (untimed) until no written data is left to flush: every
 * measured run starts with no dirty data and no write-back in flight, the product's as curl's
 * (`curl raw | zstd` and the plain curl never sync their output).
 */
const settle = (files: string) => sh(`rm -f ${files} && sync`);

// The worker runs in its own process, as in production: the simulator (XAPI) must not share its
// event loop, or the comparison with curl (a process of its own) would be unfair.
const stack = await startBenchStack({
  childWorker: true,
  scenario: {
    pools: [
      {
        id: 'bench',
        credentials: [{ username: 'root', password: 'bench-pw' }],
        srs: [
          { id: 'local', name: 'Local', size: `${Math.ceil((size * 4) / 2 ** 30) + 1}GiB`, default: true },
        ],
        vms: [
          {
            name: 'big',
            tags: ['big'],
            power: 'Halted',
            disks: [{ name: 'big root', size, content: { type: 'random', seed: 7, blocks: dataBlocks } }],
          },
        ],
      },
    ],
  },
  jobs: [
    {
      id: 'delta',
      mode: 'delta',
      vms: { tags: ['big'] },
      remotes: ['bench'],
      schedules: [{ id: 's', cron: '0 1 * * *', retention: { remote: 5 } }],
    },
    {
      id: 'full-zstd',
      mode: 'full',
      compression: 'zstd',
      vms: { tags: ['big'] },
      remotes: ['bench'],
      schedules: [{ id: 's', cron: '0 1 * * *', retention: { remote: 5 } }],
    },
  ],
});

try {
  const pool = stack.sim.pools[0];
  const xapi = await connectXapi({ url: pool.url, username: pool.username, password: pool.password });
  const vmRef = await xapi.call<string>(
    'VM.get_by_uuid',
    (
      await xapi
        .getAllRecords<any>('VM')
        .then((r) => Object.values(r).find((v: any) => v.name_label === 'big'))
    ).uuid,
  );
  const vdiRef = await xapi.call<string>('VBD.get_VDI', (await xapi.call<string[]>('VM.get_VBDs', vmRef))[0]);
  const exportUrl = (query: string) =>
    `${pool.url}/export_raw_vdi?session_id=${xapi.sessionId}&vdi=${vdiRef}&${query}`;
  const seconds = (ms: number) => ms / 1000;
  const exportStepMs = (report: RunReport) => {
    const step = report.vms[0].steps.find((s) => s.name === 'export')!;
    return { ms: elapsedMs(step.start, step.end), bytes: step.bytes ?? 0 };
  };
  console.log(`disk ${mib(size)} MiB, ${mib(dataBlocks * BLOCK)} MiB of data`);

  if (parts.has('delta')) await deltaPart();
  if (parts.has('xva')) await xvaPart();
  await xapi.logout();

  async function deltaPart(): Promise<void> {
    // (a) first backup: every allocated block.
    const plain = await timed(() =>
      sh(`curl -sS --fail -o "${stack.dir}/baseline.vhd" '${exportUrl('format=vhd')}'`),
    );
    const durable = await timed(() =>
      sh(
        `curl -sS --fail -o "${stack.dir}/baseline2.vhd" '${exportUrl('format=vhd')}' && sync "${stack.dir}/baseline2.vhd"`,
      ),
    );
    await settle(`"${stack.dir}/baseline.vhd" "${stack.dir}/baseline2.vhd"`);
    const first = await timed(() => stack.runJob('delta'));
    if (first.value.status !== 'success') throw new Error(JSON.stringify(first.value));
    const firstExport = exportStepMs(first.value);
    console.log(
      `(a) curl of the VHD export: ${seconds(plain.ms).toFixed(2)} s; + fsync ${seconds(durable.ms).toFixed(2)} s, ${mbps(firstExport.bytes, durable.ms)} MiB/s`,
    );
    printSteps(first.value);
    recordResult({
      bench: BENCH,
      figure: `delta backup, full chain (${mib(size)} MiB disk, ${mib(dataBlocks * BLOCK)} MiB data), run`,
      value: seconds(first.ms),
      unit: 's',
      baseline: 'curl + fsync of the same export',
      baselineValue: seconds(durable.ms),
      goal: '≤ 1.05×',
      met: first.ms <= 1.05 * durable.ms,
    });
    recordResult({
      bench: BENCH,
      figure: 'delta backup, full chain, export step (data path alone)',
      value: seconds(firstExport.ms),
      unit: 's',
      baseline: 'curl + fsync of the same export',
      baselineValue: seconds(durable.ms),
    });

    // (a') a delta of ~5% of the data blocks.
    const changed = Math.max(1, Math.floor(dataBlocks / 20));
    const vdiUuid = await xapi.call<string>('VDI.get_uuid', vdiRef);
    await pool.control.writeRandomBlocks(vdiUuid, { count: changed, seed: 'bench delta' });
    const second = await timed(() => stack.runJob('delta'));
    if (second.value.status !== 'success') throw new Error(JSON.stringify(second.value));
    printSteps(second.value);
    const secondExport = exportStepMs(second.value);
    console.log(
      `    delta of ${changed} changed blocks: export step ${seconds(secondExport.ms).toFixed(2)} s for ${mib(secondExport.bytes)} MiB (${mbps(secondExport.bytes, secondExport.ms)} MiB/s)`,
    );
    recordResult({
      bench: BENCH,
      figure: `a delta of ${changed} changed blocks, run`,
      value: seconds(second.ms),
      unit: 's',
      goal: '≤ 1.5 s',
      met: second.ms <= 1500,
    });
  }

  async function xvaPart(): Promise<void> {
    // (b) full XVA backup, zstd done by the host: against the same export fetched by curl (the
    // product's share), and against zstd -1 of the raw disk (the host's compressor's share).
    const vmUuid = await xapi.call<string>('VM.get_uuid', vmRef);
    const xvaUrl = `${pool.url}/export?session_id=${xapi.sessionId}&uuid=${vmUuid}&use_compression=zstd`;
    const xvaCurl = await timed(() =>
      sh(`curl -sS --fail -o "${stack.dir}/baseline.xva" '${xvaUrl}' && sync "${stack.dir}/baseline.xva"`),
    );
    await settle(`"${stack.dir}/baseline.xva"`);
    const zstdBaseline = await timed(() =>
      sh(`curl -sS --fail '${exportUrl('format=raw')}' | zstd -1 -q -o "${stack.dir}/baseline.zst"`),
    );
    await settle(`"${stack.dir}/baseline.zst"`);
    const full = await timed(() => stack.runJob('full-zstd'));
    if (full.value.status !== 'success') throw new Error(JSON.stringify(full.value));
    printSteps(full.value);
    recordResult({
      bench: BENCH,
      figure: 'full backup with zstd (XVA), run',
      value: seconds(full.ms),
      unit: 's',
      baseline: 'curl of the same zstd export + fsync',
      baselineValue: seconds(xvaCurl.ms),
      goal: '≤ 1.15×',
      met: full.ms <= 1.15 * xvaCurl.ms,
    });
    recordResult({
      bench: BENCH,
      figure: 'full backup with zstd (XVA), run, vs the raw disk compressed here',
      value: seconds(full.ms),
      unit: 's',
      baseline: 'curl raw | zstd -1',
      baselineValue: seconds(zstdBaseline.ms),
    });
    recordResult({
      bench: BENCH,
      figure: "the host's zstd export alone (curl + fsync)",
      value: seconds(xvaCurl.ms),
      unit: 's',
      baseline: 'curl raw | zstd -1',
      baselineValue: seconds(zstdBaseline.ms),
    });
  }
} finally {
  await stack.close();
}
