// Heartbeats while an activity that has no progress to report runs (a XAPI task, a few calls), so a
// worker killed mid-activity is noticed after the heartbeat timeout instead of the start-to-close one.
import { Context } from '@temporalio/activity';

type AsyncFn = (...args: never[]) => Promise<unknown>;

function keepAlive<F extends AsyncFn>(fn: F, everyMs: number): F {
  return (async (...args: Parameters<F>) => {
    let ctx: Context | undefined;
    try {
      ctx = Context.current();
    } catch {
      return fn(...args); // called outside an activity (the CLI's preview)
    }
    // A local activity has no heartbeat: its workflow task keeps it alive (workflows/options.ts).
    if (ctx.info.isLocal) return fn(...args);
    ctx.heartbeat();
    const timer = setInterval(() => ctx.heartbeat(), everyMs);
    try {
      return await fn(...args);
    } finally {
      clearInterval(timer);
    }
  }) as F;
}

/** The same activities, each heartbeating every `everyMs` while it runs. */
export function keepingAlive<T extends Record<string, AsyncFn>>(activities: T, everyMs = 5_000): T {
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [name, keepAlive(fn, everyMs)]),
  ) as T;
}
