// Task queue names (DESIGN §4). Concurrency per pool is the slot count of the worker polling each
// of these queues, so the names are the contract between workflows and workers.
export const MAIN_QUEUE = 'xcpb';

export type PoolQueueKind = 'snapshot' | 'disk-export' | 'vm-export' | 'ops';

export function poolQueue(poolId: string, kind: PoolQueueKind): string {
  return `xcpb.pool.${poolId}.${kind}`;
}
