// Makes the Temporal schedules this project owns (ids "xcpb:…") match the config. Schedules
// without the prefix are never touched.
import { type Client, ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Config } from '../core/config/schema';
import { SA } from '../core/search-attributes';
import {
  configNameFor,
  type DesiredSchedule,
  desiredSchedules,
  type ExistingSchedule,
  planSchedules,
  SCHEDULE_PREFIX,
  type SchedulePlan,
} from './plan';

const HASH_MEMO = 'xcpbConfigHash';
/** The memo entry naming the config a schedule belongs to (`xcpb apply` of another leaves it alone). */
const CONFIG_MEMO = 'xcpbConfig';

/** Reads our schedules. Visibility lags behind writes, so each one is confirmed with describe(). */
export async function readOwnedSchedules(
  client: Client,
  alsoCheck: readonly string[] = [],
): Promise<ExistingSchedule[]> {
  const ids = new Set(alsoCheck);
  for await (const s of client.schedule.list()) {
    if (s.scheduleId.startsWith(SCHEDULE_PREFIX)) ids.add(s.scheduleId);
  }
  const found: ExistingSchedule[] = [];
  for (const scheduleId of ids) {
    try {
      const d = await client.schedule.getHandle(scheduleId).describe();
      const memo = d.action.type === 'startWorkflow' ? d.action.memo : undefined;
      found.push({
        scheduleId,
        paused: d.state.paused,
        hash: memo?.[HASH_MEMO] as string | undefined,
        configName: memo?.[CONFIG_MEMO] as string | undefined,
      });
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  return found.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

function scheduleOptions(d: DesiredSchedule) {
  return {
    spec: { cronExpressions: [d.cron], timezone: d.timezone },
    action: {
      type: 'startWorkflow' as const,
      workflowType: d.workflowType,
      taskQueue: d.taskQueue,
      workflowId: d.workflowId,
      args: [d.input],
      memo: { [HASH_MEMO]: d.hash, [CONFIG_MEMO]: d.configName },
      typedSearchAttributes: [
        { key: SA.jobId, value: d.jobId },
        { key: SA.scheduleId, value: d.configScheduleId },
        { key: SA.mode, value: d.mode },
      ],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: d.catchupWindowMs },
    state: { paused: d.paused, note: d.paused ? 'disabled in the xcpb config (enabled: false)' : undefined },
  };
}

export async function planFromConfig(
  client: Client,
  config: Config,
  o: { configName?: string; prune?: boolean } = {},
): Promise<SchedulePlan> {
  const configName = o.configName ?? configNameFor(config);
  const desired = desiredSchedules(config, configName);
  const existing = await readOwnedSchedules(
    client,
    desired.map((d) => d.scheduleId),
  );
  return planSchedules(desired, existing, { configName, prune: o.prune });
}

export async function applyPlan(client: Client, plan: SchedulePlan): Promise<void> {
  for (const d of plan.create) {
    await client.schedule.create({
      scheduleId: d.scheduleId,
      ...scheduleOptions(d),
      typedSearchAttributes: [
        { key: SA.jobId, value: d.jobId },
        { key: SA.scheduleId, value: d.configScheduleId },
      ],
    });
  }
  for (const { desired } of plan.update) {
    await client.schedule
      .getHandle(desired.scheduleId)
      .update((prev) => ({ ...prev, ...scheduleOptions(desired) }));
  }
  for (const e of plan.remove) {
    await client.schedule.getHandle(e.scheduleId).delete();
  }
}

export interface ScheduleListing {
  scheduleId: string;
  jobId?: string;
  configName?: string;
  /** IANA zone of its cron */
  timezone: string;
  paused: boolean;
  nextRunTimes: Date[];
  recentRuns: { scheduledAt: Date; workflowId?: string }[];
}

export async function listOwnedSchedules(client: Client): Promise<ScheduleListing[]> {
  const out: ScheduleListing[] = [];
  for await (const s of client.schedule.list()) {
    if (!s.scheduleId.startsWith(SCHEDULE_PREFIX)) continue;
    const d = await client.schedule.getHandle(s.scheduleId).describe();
    out.push({
      scheduleId: s.scheduleId,
      jobId: s.scheduleId.split(':')[1],
      configName:
        d.action.type === 'startWorkflow' ? (d.action.memo?.[CONFIG_MEMO] as string | undefined) : undefined,
      timezone: d.spec.timezone ?? 'UTC',
      paused: d.state.paused,
      nextRunTimes: d.info.nextActionTimes.slice(0, 3),
      recentRuns: d.info.recentActions.map((a) => ({
        scheduledAt: a.scheduledAt,
        workflowId: a.action.type === 'startWorkflow' ? a.action.workflow.workflowId : undefined,
      })),
    });
  }
  return out.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}
