// `xcpb preview <jobId> --config <file> [--json]`: which VMs a run of the job would take now, and
// why the others are left out. Talks to the pools directly (no Temporal), through the very code
// the `selectVms` activity runs, so the preview cannot disagree with a run started now.
import { parseArgs } from 'node:util';
import { createPoolRegistry } from '../activities/pools';
import { createVmActivities } from '../activities/vm-activities';
import { loadConfigFile } from '../config/load';
import { formatProblems } from '../core/config/validate';
import { findJob } from '../core/job-input';
import type { SelectionResult } from '../core/vm-selection';
import { bold, dim, orange, printJson, red, UsageError } from './output';

export type Preview = SelectionResult & { missing: string[] };

export async function previewCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string' }, json: { type: 'boolean' } },
  });
  if (positionals.length !== 1 || !values.config)
    throw new UsageError('usage: xcpb preview <jobId> --config <file> [--json]');
  const loaded = await loadConfigFile(values.config);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  const job = findJob(loaded.config, positionals[0]);
  const pools = createPoolRegistry(loaded.config.pools);
  try {
    const preview: Preview = await createVmActivities(pools).selectVms({ vms: job.vms });
    if (values.json) printJson(preview);
    else process.stdout.write(`${formatPreview(job.id, preview).join('\n')}\n`);
    return 0;
  } finally {
    await pools.close();
  }
}

export function formatPreview(jobId: string, p: Preview): string[] {
  const lines = [bold(`a run of ${jobId} now would back up ${p.selected.length} VMs:`)];
  for (const vm of p.selected) lines.push(`  ${vm.name}  ${dim(`${vm.uuid} on ${vm.poolId}`)}`);
  if (p.excluded.length) lines.push(bold(`left out (${p.excluded.length}):`));
  for (const vm of p.excluded)
    lines.push(`  ${vm.name}  ${orange(vm.reason)}  ${dim(`${vm.uuid} on ${vm.poolId}`)}`);
  for (const uuid of p.missing) lines.push(red(`  ${uuid}: named by the job, but in no configured pool`));
  return lines;
}
