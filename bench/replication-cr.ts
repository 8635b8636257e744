/**
 * Continuous replication's delta path against a baseline measured in the same run: a CR run of a
 * 4 GiB disk after 256 MiB of it changed (export of the delta VHD streamed into
 * `PUT /import_raw_vdi?format=vhd` on a clone of the previous replica, in a second pool, through
 * Temporal and the workers), against curl PUTting the same delta VHD bytes from a file into a VDI
 * of that pool (the raw cost of the import), and against curl GET + PUT (export then import).
 * Run: node --import tsx bench/replication-cr.ts
 * Env: XCPB_BENCH_DISK (default 4GiB), XCPB_BENCH_CHANGED (default 256MiB), XCPB_BENCH_DIR.
 */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { parseSize } from '../simulator/scenario';
import { connectXapi } from '../xapi';
import { mbps, mib, startBenchStack, timed } from './lib/backup-stack';
import { elapsedMs, recordResult } from './lib/results';

const BENCH = 'replication-cr';

const BLOCK = 2 << 20;
const size = Math.ceil(parseSize(process.env.XCPB_BENCH_DISK ?? '4GiB') / BLOCK) * BLOCK;
const changed = Math.ceil(parseSize(process.env.XCPB_BENCH_CHANGED ?? '256MiB') / BLOCK);
const dataBlocks = Math.floor(size / BLOCK / 4);

function sh(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${script} exited ${code}`))));
  });
}

const srSize = `${Math.ceil((size * 4) / 2 ** 30) + 1}GiB`;
const stack = await startBenchStack({
  childWorker: true,
  scenario: {
    pools: [
      {
        id: 'bench',
        credentials: [{ username: 'root', password: 'bench-pw' }],
        srs: [{ id: 'local', name: 'Local', size: srSize, default: true }],
        vms: [
          {
            name: 'big',
            tags: ['big'],
            power: 'Halted',
            disks: [{ name: 'big root', size, content: { type: 'random', seed: 7, blocks: dataBlocks } }],
          },
        ],
      },
      {
        id: 'dr',
        credentials: [{ username: 'root', password: 'bench-pw' }],
        srs: [{ id: 'replicas', name: 'Replicas', size: srSize, default: true }],
      },
    ],
  },
  jobs: [
    {
      id: 'cr',
      mode: 'delta',
      vms: { pools: ['bench'], tags: ['big'] },
      srs: [{ pool: 'dr', sr: 'Replicas' }],
      schedules: [{ id: 's', cron: '0 1 * * *', retention: { snapshot: 2 }, copyRetention: 2 }],
    },
  ],
});

try {
  const [src, dst] = stack.sim.pools;
  const xapi = await connectXapi({ url: src.url, username: src.username, password: src.password });
  const target = await connectXapi({ url: dst.url, username: dst.username, password: dst.password });
  const vm = Object.values(await xapi.getAllRecords<any>('VM')).find((v: any) => v.name_label === 'big');
  const vmRef = await xapi.call<string>('VM.get_by_uuid', vm.uuid);
  const vdiRef = await xapi.call<string>('VBD.get_VDI', (await xapi.call<string[]>('VM.get_VBDs', vmRef))[0]);
  const vdiUuid = await xapi.call<string>('VDI.get_uuid', vdiRef);
  console.log(
    `disk ${mib(size)} MiB, ${mib(dataBlocks * BLOCK)} MiB of data, ${mib(changed * BLOCK)} MiB changed`,
  );

  const first = await timed(() => stack.runJob('cr'));
  if (first.value.status !== 'success') throw new Error(JSON.stringify(first.value));
  console.log(`first CR run (full import): ${(first.ms / 1000).toFixed(2)} s`);

  // The base of the delta: the job's snapshot the first run left.
  const base = Object.entries(await xapi.getAllRecords<any>('VM')).find(
    ([, v]: [string, any]) => v.is_a_snapshot && v.other_config['xo:backup:job'] === 'cr',
  )![0];
  const baseVdi = await xapi.call<string>('VBD.get_VDI', (await xapi.call<string[]>('VM.get_VBDs', base))[0]);
  await src.control.writeRandomBlocks(vdiUuid, { count: changed, seed: 'bench cr delta' });

  const run = await timed(() => stack.runJob('cr'));
  if (run.value.status !== 'success') throw new Error(JSON.stringify(run.value));
  const step = run.value.vms[0].steps.find((s) => s.name === 'export')!;
  const stepMs = elapsedMs(step.start, step.end);
  const bytes = step.bytes ?? 0;
  console.log(
    `CR delta run: ${(run.ms / 1000).toFixed(2)} s; export+import step ${(stepMs / 1000).toFixed(2)} s for ${mib(bytes)} MiB (${mbps(bytes, stepMs)} MiB/s); ${step.detail}`,
  );

  // Baselines: the same delta (live disk against the same base) as a file, then PUT raw.
  const file = `${stack.dir}/delta.vhd`;
  const exportUrl = `${src.url}/export_raw_vdi?session_id=${xapi.sessionId}&vdi=${vdiRef}&base=${baseVdi}&format=vhd`;
  const get = await timed(() => sh(`curl -sS --fail -o "${file}" '${exportUrl}'`));
  const fileBytes = (await stat(file)).size;
  const srRef = (await target.call<string[]>('SR.get_by_name_label', 'Replicas'))[0];
  const newVdi = () =>
    target.call<string>('VDI.create', {
      name_label: 'baseline',
      name_description: '',
      SR: srRef,
      virtual_size: String(size),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
      xenstore_data: {},
      sm_config: {},
      tags: [],
    });
  const putUrl = (vdi: string) =>
    `${dst.url}/import_raw_vdi?session_id=${target.sessionId}&vdi=${vdi}&format=vhd`;
  const vdiA = await newVdi();
  const put = await timed(() => sh(`curl -sS --fail -T "${file}" '${putUrl(vdiA)}'`));
  console.log(
    `baseline curl PUT of the same ${mib(fileBytes)} MiB delta VHD: ${(put.ms / 1000).toFixed(2)} s (${mbps(fileBytes, put.ms)} MiB/s)`,
  );
  console.log(
    `baseline curl GET to a file: ${(get.ms / 1000).toFixed(2)} s; GET + PUT: ${((get.ms + put.ms) / 1000).toFixed(2)} s`,
  );
  const what = `${mib(changed * BLOCK)} MiB changed of ${mib(size)} MiB`;
  recordResult({
    bench: BENCH,
    figure: `CR delta, export+import step (${what})`,
    value: stepMs / 1000,
    unit: 's',
    baseline: 'curl GET of the same delta export + curl PUT of it',
    baselineValue: (get.ms + put.ms) / 1000,
  });
  recordResult({
    bench: BENCH,
    figure: `CR delta, export+import step vs the import alone (${what})`,
    value: stepMs / 1000,
    unit: 's',
    baseline: 'curl PUT of the same delta VHD',
    baselineValue: put.ms / 1000,
  });
  recordResult({
    bench: BENCH,
    figure: `CR delta, whole run (${what})`,
    value: run.ms / 1000,
    unit: 's',
    baseline: 'curl GET + PUT of the same delta',
    baselineValue: (get.ms + put.ms) / 1000,
  });
  await xapi.logout();
  await target.logout();
} finally {
  await stack.close();
}
