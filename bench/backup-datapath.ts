/**
 * Data path of a backup, against baselines measured in the same run (issue 5, benchmarks a and b):
 *  (a) delta backup (first run: every allocated block) of a disk half full, simulator → local remote,
 *      through Temporal, the workers, VHD re-identification and the fan-out writer, against curl of
 *      the same VHD export to a file; then a delta of ~5% changed blocks against its own curl;
 *  (b) a full (XVA) backup with zstd against `curl raw export | zstd -1 > file` of the same disk.
 * Run: node --import tsx bench/backup-datapath.ts
 * Env: XCPB_BENCH_DISK (default 4GiB), XCPB_BENCH_DIR (where the data goes, default the temp folder).
 */
import { spawn } from 'node:child_process';
import type { RunReport } from '../core/run-report';
import { parseSize } from '../simulator/scenario';
import { connectXapi } from '../xapi';
import { mbps, mib, startBenchStack, timed } from './lib/backup-stack';
import { elapsedMs } from './lib/results';

const BLOCK = 2 << 20;
const size = Math.ceil(parseSize(process.env.XCPB_BENCH_DISK ?? '4GiB') / BLOCK) * BLOCK;
const dataBlocks = Math.floor(size / BLOCK / 2);

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
  console.log(`disk ${mib(size)} MiB, ${mib(dataBlocks * BLOCK)} MiB of data`);

  // (a) first backup: every allocated block.
  const baseline = await timed(() =>
    sh(`curl -sS --fail -o "${stack.dir}/baseline.vhd" '${exportUrl('format=vhd')}'`),
  );
  const first = await timed(() => stack.runJob('delta'));
  if (first.value.status !== 'success') throw new Error(JSON.stringify(first.value));
  const bytes = first.value.vms[0].steps.find((s) => s.name === 'export')!.bytes ?? 0;
  console.log(
    `(a) baseline curl of the VHD export:  ${(baseline.ms / 1000).toFixed(2)} s, ${mbps(bytes, baseline.ms)} MiB/s`,
  );
  console.log(
    `    delta backup run (full chain):    ${(first.ms / 1000).toFixed(2)} s, ${mbps(bytes, first.ms)} MiB/s`,
  );
  const durable = await timed(() =>
    sh(
      `curl -sS --fail -o "${stack.dir}/baseline2.vhd" '${exportUrl('format=vhd')}' && sync "${stack.dir}/baseline2.vhd"`,
    ),
  );
  console.log(
    `    baseline curl + fsync (durable):  ${(durable.ms / 1000).toFixed(2)} s, ${mbps(bytes, durable.ms)} MiB/s`,
  );
  console.log(
    `    ratio backup / baseline: ${(first.ms / baseline.ms).toFixed(2)}, / durable baseline: ${(first.ms / durable.ms).toFixed(2)}`,
  );
  printSteps(first.value);

  // (a') a delta of ~5% of the data blocks.
  const changed = Math.max(1, Math.floor(dataBlocks / 20));
  const vdiUuid = await xapi.call<string>('VDI.get_uuid', vdiRef);
  await pool.control.writeRandomBlocks(vdiUuid, { count: changed, seed: 'bench delta' });
  const second = await timed(() => stack.runJob('delta'));
  const deltaBytes = second.value.vms[0].steps.find((s) => s.name === 'export')!.bytes ?? 0;
  printSteps(second.value);
  const deltaExport = second.value.vms[0].steps.find((st) => st.name === 'export')!;
  const deltaExportMs = elapsedMs(deltaExport.start, deltaExport.end);
  console.log(
    `    delta of ${changed} changed blocks: export step ${(deltaExportMs / 1000).toFixed(2)} s for ${mib(deltaBytes)} MiB (${mbps(deltaBytes, deltaExportMs)} MiB/s); whole run ${(second.ms / 1000).toFixed(2)} s`,
  );

  // (b) full XVA backup, zstd done by the host, against zstd -1 of the raw disk.
  const zstdBaseline = await timed(() =>
    sh(`curl -sS --fail '${exportUrl('format=raw')}' | zstd -1 -q -o "${stack.dir}/baseline.zst"`),
  );
  const full = await timed(() => stack.runJob('full-zstd'));
  if (full.value.status !== 'success') throw new Error(JSON.stringify(full.value));
  console.log(`(b) baseline curl raw | zstd -1:     ${(zstdBaseline.ms / 1000).toFixed(2)} s`);
  console.log(`    full zstd backup run:            ${(full.ms / 1000).toFixed(2)} s`);
  console.log(`    ratio backup / baseline: ${(full.ms / zstdBaseline.ms).toFixed(2)}`);
  await xapi.logout();
} finally {
  await stack.close();
}
