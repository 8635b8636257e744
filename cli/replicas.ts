// `xcpb replicas list --config <file> [--job <id>] [--json]`: the complete DR / CR replicas on the
// pools the config knows; `xcpb replicas start <vmUuid> --config <file>`: fail over to a replica in
// one command: clone it, unblock the clone and start it (resume it, for a RAM-enabled replica). The
// replica itself is kept as it was, still blocked, so the next run keeps replicating.
import { createPoolRegistry } from '../activities/pools';
import type { VmRecord } from '../activities/xapi-records';
import { loadConfigFile } from '../config/load';
import type { Config } from '../core/config/schema';
import { formatProblems } from '../core/config/validate';
import { REPLICA_PURPOSE, REPLICA_TAGS, replicaMarksRemoved, SR_KEY } from '../core/replica';
import { NULL_REF } from '../core/restore-records';
import { XCPB_KEYS, XO_KEYS } from '../core/xo-keys';
import type { XapiClient } from '../xapi';
import { printJson, UsageError } from './output';
import { type Register, run, withExamples } from './program';

export interface ReplicaRow {
  vmUuid: string;
  name: string;
  poolId: string;
  srUuid: string;
  jobId: string;
  scheduleId?: string;
  sourceVmUuid: string;
  datetime: string;
  powerState: string;
}

const isReplica = (vm: VmRecord) =>
  !vm.is_a_snapshot &&
  vm.other_config?.[XCPB_KEYS.createdBy] === REPLICA_PURPOSE &&
  !!vm.other_config[SR_KEY];

export async function listReplicas(
  xapiOf: (poolId: string) => Promise<XapiClient>,
  poolIds: string[],
  job?: string,
): Promise<ReplicaRow[]> {
  const rows: ReplicaRow[] = [];
  for (const poolId of poolIds) {
    const xapi = await xapiOf(poolId);
    for (const vm of Object.values(await xapi.getAllRecords<VmRecord>('VM'))) {
      if (!isReplica(vm) || (job && vm.other_config[XO_KEYS.job] !== job)) continue;
      rows.push({
        vmUuid: vm.uuid,
        name: vm.name_label,
        poolId,
        srUuid: vm.other_config[SR_KEY],
        jobId: vm.other_config[XO_KEYS.job],
        scheduleId: vm.other_config[XO_KEYS.schedule],
        sourceVmUuid: vm.other_config[XO_KEYS.vm],
        datetime: vm.other_config[XO_KEYS.datetime],
        powerState: vm.power_state,
      });
    }
  }
  return rows.sort((a, b) => a.jobId.localeCompare(b.jobId) || b.datetime.localeCompare(a.datetime));
}

/**
 * Clones the replica and starts the clone. A suspended (RAM-enabled) replica cannot be cloned
 * (XAPI clones halted VMs only), but its snapshot, suspended too, can: the clone is resumed.
 */
export async function startReplica(
  xapi: XapiClient,
  vmUuid: string,
): Promise<{ vmUuid: string; name: string; powerState: string }> {
  const ref = await xapi.call<string>('VM.get_by_uuid', vmUuid);
  const replica = await xapi.getRecord<VmRecord>('VM', ref);
  if (!isReplica(replica)) throw new UsageError(`VM ${vmUuid} is not a replica made by xcp-backup`);
  let source = ref;
  if (replica.power_state === 'Suspended') {
    const snaps = await Promise.all(
      replica.snapshots.map(async (s) => ({ ref: s, vm: await xapi.getRecord<VmRecord>('VM', s) })),
    );
    const newest = snaps
      .filter((s) => s.vm.power_state === 'Suspended')
      .sort((a, b) => String(b.vm.snapshot_time).localeCompare(String(a.vm.snapshot_time)))[0];
    if (!newest) throw new Error(`replica ${vmUuid} is suspended and has no suspended snapshot to clone`);
    source = newest.ref;
  }
  const name = replica.name_label.replace(/ - \(.*\)$/, '') + ' (failover)';
  const clone = await xapi.callAsync<string>('VM.clone', source, name);
  // A clone of a snapshot is a template, as the snapshot is: make it a VM.
  if (source !== ref) await xapi.call('VM.set_is_a_template', clone, false);
  // The clone is an ordinary VM: no replica marks (on its disks neither), start allowed.
  const oc = await xapi.call<Record<string, string>>('VM.get_other_config', clone);
  await xapi.call('VM.set_other_config', clone, replicaMarksRemoved(oc));
  for (const vbd of await xapi.call<string[]>('VM.get_VBDs', clone)) {
    const vdi = await xapi.call<string>('VBD.get_VDI', vbd);
    if (vdi === NULL_REF) continue;
    const voc = await xapi.call<Record<string, string>>('VDI.get_other_config', vdi);
    await xapi.call('VDI.set_other_config', vdi, replicaMarksRemoved(voc));
  }
  const tags = await xapi.call<string[]>('VM.get_tags', clone);
  await xapi.call(
    'VM.set_tags',
    clone,
    tags.filter((t) => t !== REPLICA_TAGS.cr && t !== REPLICA_TAGS.dr),
  );
  await xapi.call('VM.remove_from_blocked_operations', clone, 'start');
  await xapi.call('VM.remove_from_blocked_operations', clone, 'start_on');
  const state = await xapi.call<string>('VM.get_power_state', clone);
  if (state === 'Suspended') await xapi.callAsync('VM.resume', clone, false, false);
  else await xapi.callAsync('VM.start', clone, false, false);
  return {
    vmUuid: await xapi.call<string>('VM.get_uuid', clone),
    name,
    powerState: await xapi.call<string>('VM.get_power_state', clone),
  };
}

async function loadConfig(file: string): Promise<Config> {
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) throw new UsageError(formatProblems(loaded.problems));
  return loaded.config;
}

export function formatReplicaTable(rows: ReplicaRow[]): string {
  if (rows.length === 0) return 'no replicas';
  const table = rows.map((r) => [r.vmUuid, r.name, r.jobId, r.poolId, r.datetime, r.powerState]);
  const head = ['REPLICA', 'NAME', 'JOB', 'POOL', 'TIME', 'STATE'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => (t[i] ?? '').length)));
  return [head, ...table]
    .map((cells) =>
      cells
        .map((c, i) => (c ?? '').padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function list(o: { config: string; job?: string; json?: boolean }): Promise<number> {
  const config = await loadConfig(o.config);
  if (o.job && !config.jobs.some((j) => j.id === o.job)) {
    throw new UsageError(
      `no job "${o.job}" in the config (jobs: ${config.jobs.map((j) => j.id).join(', ') || 'none'})`,
    );
  }
  // Replicas live on the pools the jobs' SR targets are on.
  const targetPools = [
    ...new Set(config.jobs.filter((j) => !o.job || j.id === o.job).flatMap((j) => j.srs.map((s) => s.pool))),
  ];
  const pools = createPoolRegistry(config.pools);
  try {
    const rows = await listReplicas((p) => pools.client(p), targetPools, o.job);
    if (o.json) printJson({ replicas: rows });
    else process.stdout.write(`${formatReplicaTable(rows)}\n`);
    return 0;
  } finally {
    await pools.close();
  }
}

async function start(uuid: string, o: { config: string; json?: boolean }): Promise<number> {
  const config = await loadConfig(o.config);
  const pools = createPoolRegistry(config.pools);
  try {
    for (const pool of config.pools) {
      const xapi = await pools.client(pool.id);
      const found = await xapi.call<string>('VM.get_by_uuid', uuid).catch(() => undefined);
      if (!found) continue;
      const started = await startReplica(xapi, uuid);
      if (o.json) printJson({ replica: uuid, poolId: pool.id, ...started });
      else
        process.stdout.write(
          `started ${started.name} (${started.vmUuid}) on pool ${pool.id}: ${started.powerState}\n`,
        );
      return 0;
    }
    throw new UsageError(
      `no VM ${uuid} on the configured pools (${config.pools.map((p) => p.id).join(', ')})`,
    );
  } finally {
    await pools.close();
  }
}

export const registerReplicas: Register = (program) => {
  const replicas = withExamples(
    program
      .command('replicas')
      .description('the DR / CR replicas the jobs made on their SRs; fail over to one'),
    'xcpb replicas list --config my.yaml',
    'xcpb replicas start <replicaVmUuid> --config my.yaml',
  );
  withExamples(
    replicas
      .command('list')
      .description("every complete replica on the pools of the jobs' SR targets, newest first per job")
      .requiredOption('-c, --config <file>', 'the config file (its pools and jobs)')
      .option('--job <id>', 'only the replicas of this job')
      .option('--json', 'as JSON'),
    'xcpb replicas list -c my.yaml',
    'xcpb replicas list -c my.yaml --job nightly-cr --json',
  ).action(run(list));
  withExamples(
    replicas
      .command('start')
      .description(
        'fail over: clone the replica, unblock the clone and start it (resume it, for a RAM-enabled ' +
          'replica); the replica itself stays as it was, so the next run keeps replicating',
      )
      .argument('<replicaVmUuid>', 'the replica VM (its uuid, from `xcpb replicas list`)')
      .requiredOption('-c, --config <file>', 'the config file (its pools)')
      .option('--json', 'as JSON'),
    'xcpb replicas start 0b6c3f1e-9a52-4c1b-8f0e-2d7a1c9e4b33 -c my.yaml',
  ).action(run(start));
};
