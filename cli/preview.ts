// `xcpb preview <jobId> --config <file> [--json]`: which VMs a run of the job would take now, and
// why the others are left out. Talks to the pools directly (no Temporal), through the very code
// the `selectVms` activity runs, so the preview cannot disagree with a run started now.
import { createPoolRegistry } from '../activities/pools';
import { createVmActivities } from '../activities/vm-activities';
import { findJob } from '../core/job-input';
import type { SelectionResult } from '../core/vm-selection';
import { configArg } from './inputs';
import { bold, dim, orange, plural, printJson, red } from './output';
import { type Register, run, withExamples } from './program';

export type Preview = SelectionResult & { missing: string[] };

export const registerPreview: Register = (program) => {
  withExamples(
    program
      .command('preview')
      .description(
        'which VMs a run of the job would take now, and why the others are left out (asks the pools directly)',
      )
      .argument('<jobId>', 'a job of the config')
      .requiredOption('-c, --config <file>', 'the config file')
      .option('--json', 'as JSON'),
    'xcpb preview prod-nightly --config examples/config.yaml',
  ).action(run(preview));
};

async function preview(jobId: string, values: { config: string; json?: boolean }): Promise<number> {
  const config = await configArg(values.config);
  const job = findJob(config, jobId);
  const pools = createPoolRegistry(config.pools);
  try {
    // Unpaged: the whole selection with every excluded VM and why.
    const all = await createVmActivities(pools).selectVms({ vms: job.vms });
    const preview: Preview = { selected: all.selected, excluded: all.excluded ?? [], missing: all.missing };
    if (values.json) printJson(preview);
    else process.stdout.write(`${formatPreview(job.id, preview).join('\n')}\n`);
    return 0;
  } finally {
    await pools.close();
  }
}

export function formatPreview(jobId: string, p: Preview): string[] {
  const lines = [bold(`a run of ${jobId} now would back up ${plural(p.selected.length, 'VM')}:`)];
  for (const vm of p.selected) lines.push(`  ${vm.name}  ${dim(`${vm.uuid} on ${vm.poolId}`)}`);
  if (p.excluded.length) lines.push(bold(`left out (${p.excluded.length}):`));
  for (const vm of p.excluded)
    lines.push(`  ${vm.name}  ${orange(vm.reason)}  ${dim(`${vm.uuid} on ${vm.poolId}`)}`);
  for (const uuid of p.missing) lines.push(red(`  ${uuid}: named by the job, but in no configured pool`));
  return lines;
}
