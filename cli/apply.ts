// `xcpb apply <file> [--dry-run] [--prune] [--yes]`: the config's schedules become Temporal schedules.
// Each schedule records its config's name, so applying one config never touches another's.
// `xcpb schedules [--json]`: what is scheduled, with the next run times in each schedule's zone.
import { createInterface } from 'node:readline/promises';
import { loadConfigFile } from '../config/load';
import { formatProblems } from '../core/config/validate';
import { applyPlan, listOwnedSchedules, planFromConfig } from '../schedules/apply';
import { configNameFor, describePlan, planIsEmpty } from '../schedules/plan';
import {
  type ConnectionAndConfigFlags,
  type ConnectionFlags,
  clientFromFlags,
  temporalSectionOf,
  withConnectionOptions,
} from './connection-flags';
import { dim, orange, printJson, terminalStyle } from './output';
import { type Register, run, withExamples } from './program';
import { formatTable } from './table';
import { formatInZone } from './zones';

interface ApplyFlags extends ConnectionFlags {
  dryRun?: boolean;
  prune?: boolean;
  yes?: boolean;
}

export const registerApply: Register = (program) => {
  withExamples(
    withConnectionOptions(
      program
        .command('apply')
        .description(
          "create, update and delete Temporal schedules so they match the config's jobs; schedules of other configs are left alone",
        )
        .argument('<file>', 'YAML or JSON config file')
        .option('--dry-run', 'print the changes, make none')
        .option('--prune', 'also delete xcpb schedules of other configs (or of none recorded)')
        .option('-y, --yes', 'delete without asking'),
    ),
    'xcpb apply examples/config.yaml --dry-run',
    'xcpb apply /etc/xcpb/prod.yaml',
    'xcpb apply /etc/xcpb/prod.yaml --prune --yes   # the only config: delete every other xcpb schedule',
  ).action(run(apply));
};

async function apply(file: string, o: ApplyFlags): Promise<number> {
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\nnothing changed\n`);
    return 2;
  }
  const configName = configNameFor(loaded.config, file);
  const client = await clientFromFlags(o, loaded.config.temporal);
  try {
    const plan = await planFromConfig(client, loaded.config, { configName, prune: o.prune });
    const others = plan.others.length
      ? dim(`\n${plan.others.length} schedules of other configs left alone (--prune deletes them)`)
      : '';
    if (planIsEmpty(plan)) {
      process.stdout.write(
        `config ${configName}: no change (${plan.unchanged.length} schedules up to date)${others}\n`,
      );
      return 0;
    }
    process.stdout.write(`config ${configName}:\n${describePlan(plan).join('\n')}${others}\n`);
    if (o.dryRun) {
      process.stdout.write('dry run: nothing changed\n');
      return 0;
    }
    if (plan.remove.length > 0 && !o.yes && !(await confirm(`delete ${plan.remove.length} schedules?`))) {
      process.stdout.write(
        process.stdin.isTTY
          ? 'nothing changed\n'
          : 'nothing changed: deleting schedules needs --yes when not on a terminal\n',
      );
      return 1;
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

/** Asks on the terminal; never yes without one. */
async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

export const registerSchedules: Register = (program) => {
  withExamples(
    withConnectionOptions(
      program
        .command('schedules')
        .description("the xcpb schedules, their config, next runs (in the schedule's time zone) and last run")
        .option('--json', 'as JSON'),
      { configFlag: true },
    ),
    'xcpb schedules',
    'xcpb schedules --json',
    'xcpb schedules --config /etc/xcpb/prod.yaml   # on the Temporal its "temporal:" section names',
  ).action(
    run(async (o: ConnectionAndConfigFlags & { json?: boolean }) => {
      const client = await clientFromFlags(o, await temporalSectionOf(o.config));
      try {
        const schedules = await listOwnedSchedules(client);
        if (o.json) {
          printJson(schedules);
          return 0;
        }
        if (schedules.length === 0) {
          process.stdout.write('no xcpb schedules (run `xcpb apply <config>`)\n');
          return 0;
        }
        const rows = schedules.map((s) => [
          s.scheduleId,
          s.configName ?? dim('?'),
          s.paused
            ? orange('paused')
            : s.nextRunTimes.map((d) => formatInZone(d, s.timezone)).join('\n') || 'none',
          s.recentRuns.at(-1)?.workflowId ?? dim('never'),
        ]);
        process.stdout.write(
          `${formatTable(['SCHEDULE', 'CONFIG', 'NEXT RUNS', 'LAST RUN'], rows, terminalStyle)}\n`,
        );
        return 0;
      } finally {
        await client.connection.close();
      }
    }),
  );
};
