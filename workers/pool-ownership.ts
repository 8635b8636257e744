// One worker process per pool (DESIGN §4): a pool's limits are the slot counts of the worker polling
// its queues, so a second process polling them would double every limit. Before serving a pool, a
// worker asks Temporal who already polls the pool's queues (describeTaskQueue) and refuses if a live
// worker does. A poller that is gone still shows for a few minutes, so: a poller of this host whose
// process no longer exists is ignored (the common case: a worker restarted after a crash), and one of
// another host counts until it has not polled for STALE_AFTER_MS (a live worker renews its long poll
// at least every minute).
import os from 'node:os';
import { tsToMs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import type { NativeConnection } from '@temporalio/worker';
import { type PoolQueueKind, poolQueue } from '../core/task-queues';

const { TaskQueueType, TaskQueueKind } = proto.temporal.api.enums.v1;

export const STALE_AFTER_MS = 90_000;
const KINDS: PoolQueueKind[] = ['snapshot', 'disk-export', 'vm-export', 'import', 'ops'];

export interface Poller {
  identity: string;
  taskQueue: string;
  lastAccess: number;
}

export interface Self {
  host: string;
  pid: number;
  isAlive(pid: number): boolean;
  now: number;
}

/** The SDK's default identity is `<pid>@<host>`. */
export function parseIdentity(identity: string): { pid?: number; host?: string } {
  const m = /^(\d+)@(.+)$/.exec(identity);
  return m ? { pid: Number(m[1]), host: m[2] } : {};
}

/** The pollers that belong to a worker still running (pure; see the module comment). */
export function livePollers(pollers: Poller[], self: Self): Poller[] {
  return pollers.filter((p) => {
    const { pid, host } = parseIdentity(p.identity);
    if (host === self.host && pid !== undefined) return pid !== self.pid && self.isAlive(pid);
    return self.now - p.lastAccess < STALE_AFTER_MS;
  });
}

export function describeOwner(poolId: string, owner: Poller, now: number): string {
  const { pid, host } = parseIdentity(owner.identity);
  const who = host
    ? `worker ${owner.identity} (process ${pid} on host ${host})`
    : `worker "${owner.identity}"`;
  const ago = Math.max(0, Math.round((now - owner.lastAccess) / 1000));
  return (
    `pool "${poolId}" is already served by ${who}, which polled ${owner.taskQueue} ${ago} s ago. ` +
    "One worker per pool: the pool's limits are its slot counts. Stop that worker, or serve other pools with --pool"
  );
}

const processAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Every poller of the pool's activity queues, as Temporal sees them now. */
export async function pollersOfPool(
  connection: NativeConnection,
  namespace: string,
  poolId: string,
): Promise<Poller[]> {
  const found: Poller[] = [];
  for (const kind of KINDS) {
    const taskQueue = poolQueue(poolId, kind);
    const r = await connection.workflowService.describeTaskQueue({
      namespace,
      taskQueue: { name: taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    for (const p of r.pollers ?? [])
      found.push({ identity: p.identity ?? '?', taskQueue, lastAccess: tsToMs(p.lastAccessTime) });
  }
  return found;
}

/** The live worker already serving the pool, if any. */
export async function currentOwner(
  connection: NativeConnection,
  namespace: string,
  poolId: string,
): Promise<Poller | undefined> {
  const self: Self = { host: os.hostname(), pid: process.pid, isAlive: processAlive, now: Date.now() };
  const live = livePollers(await pollersOfPool(connection, namespace, poolId), self);
  return live.sort((a, b) => b.lastAccess - a.lastAccess)[0];
}
