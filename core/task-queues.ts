// Task queue names (DESIGN §4). Concurrency per pool is the slot count of the worker polling each
// of these queues, so the names are the contract between workflows and workers.
export const MAIN_QUEUE = 'xcpb';

// `import`: the target pool's side of a replication (DR / CR): what writes into its SRs.
export type PoolQueueKind = 'snapshot' | 'disk-export' | 'vm-export' | 'import' | 'ops';

export function poolQueue(poolId: string, kind: PoolQueueKind): string {
  return `xcpb.pool.${poolId}.${kind}`;
}
