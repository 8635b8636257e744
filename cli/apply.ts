// `xcpb apply <file> [--dry-run]`: the config's schedules become Temporal schedules.
// `xcpb schedules [--json]`: what is scheduled, with the next run times.
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load';
import { formatProblems } from '../core/config/validate';
import { applyPlan, listOwnedSchedules, planFromConfig } from '../schedules/apply';
import { describePlan, planIsEmpty } from '../schedules/plan';
import { clientFromFlags, connectionOptions, temporalSectionOf } from './connection-flags';
import { dim, printJson, UsageError } from './output';

export async function applyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { 'dry-run': { type: 'boolean' }, ...connectionOptions },
  });
  if (positionals.length !== 1) throw new UsageError('usage: xcpb apply <config-file> [--dry-run]');
  const loaded = await loadConfigFile(positionals[0]);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\nnothing changed\n`);
    return 2;
  }
  const client = await clientFromFlags(values, loaded.config.temporal);
  try {
    const plan = await planFromConfig(client, loaded.config);
    const lines = describePlan(plan);
    if (planIsEmpty(plan)) {
      process.stdout.write(`no change (${plan.unchanged.length} schedules up to date)\n`);
      return 0;
    }
    process.stdout.write(`${lines.join('\n')}\n`);
    if (values['dry-run']) {
      process.stdout.write('dry run: nothing changed\n');
      return 0;
    }
    await applyPlan(client, plan);
    process.stdout.write(
      `applied: ${plan.create.length} created, ${plan.update.length} updated, ${plan.remove.length} deleted\n`,
    );
    return 0;
  } finally {
    await client.connection.close();
  }
}

export async function schedulesCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, config: { type: 'string' }, ...connectionOptions },
  });
  const client = await clientFromFlags(values, await temporalSectionOf(values.config));
  try {
    const schedules = await listOwnedSchedules(client);
    if (values.json) {
      printJson(schedules);
      return 0;
    }
    if (schedules.length === 0) process.stdout.write('no xcpb schedules (run `xcpb apply <config>`)\n');
    for (const s of schedules) {
      const next = s.paused ? 'paused' : s.nextRunTimes.map((d) => d.toISOString()).join(', ') || 'none';
      process.stdout.write(
        `${s.scheduleId}  next: ${next}${s.recentRuns.length ? dim(`  last: ${s.recentRuns.at(-1)?.workflowId}`) : ''}\n`,
      );
    }
    return 0;
  } finally {
    await client.connection.close();
  }
}
