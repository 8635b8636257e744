// The target pools' import slots (the `import` slot kind, default 2 per pool). A replica's bytes
// stream into the target pool from the SOURCE pool's export activity (one export feeds every
// target), so the target pool's worker cannot bound imports by running them on its `import` queue.
// Instead a VM's run leases a slot there: an activity on that queue, which starts only when one of
// the queue's slots is free, tells the workflow so (a signal) and holds the slot, heartbeating, until
// the run releases it (cancels the activity) once its replicas are made, or the run ends.
// One lease per target pool per VM, shared by the VM's SRs in that pool (two leases of one run on a
// one-slot pool would wait on each other), taken in pool order, so that two runs needing the same
// pools never each hold the slot the other waits for.
import {
  CancellationScope,
  condition,
  defineSignal,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type { ImportSlotActivities } from '../../activities/sr-writer-contract';
import { IMPORT_SLOT_SIGNAL } from '../../core/replica';
import { poolQueue } from '../../core/task-queues';

const slotHeld = defineSignal<[string]>(IMPORT_SLOT_SIGNAL);

function leaseActivities(poolId: string) {
  return proxyActivities<ImportSlotActivities>({
    summary: `import slot of pool ${poolId}`,
    taskQueue: poolQueue(poolId, 'import'),
    // Held for the whole transfer; a dead holder is noticed by its heartbeat and the lease retried.
    startToCloseTimeout: '7d',
    heartbeatTimeout: '30s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  });
}

export class ImportSlots {
  private readonly held = new Set<string>();
  /** every lease runs in this scope: cancelling it releases them all */
  private readonly scope = new CancellationScope();
  private readonly leases: Promise<void>[] = [];
  private taking?: Promise<void>;
  private users = 0;

  /** `poolIds`: the pools the job's SRs are in. */
  constructor(private readonly poolIds: readonly string[]) {
    setHandler(slotHeld, (lease) => {
      this.held.add(lease);
    });
  }

  /** Waits until this run holds a slot of every target pool (each writer calls it once). */
  take(): Promise<void> {
    this.users++;
    this.taking ??= this.scope.run(() => this.takeAll());
    return this.taking;
  }

  private async takeAll(): Promise<void> {
    for (const poolId of [...new Set(this.poolIds)].sort()) {
      const lease = poolId;
      const holding = leaseActivities(poolId).holdImportSlot({ poolId, lease });
      this.leases.push(holding.catch(() => {})); // a lease lost after it was held changes nothing
      await Promise.race([
        condition(() => this.held.has(lease)),
        holding.then(() => {
          throw new Error(`the import slot lease of pool ${poolId} ended before it was held`);
        }),
      ]);
    }
  }

  /** A writer is done importing (or never will): the slots go when every writer that took them is. */
  async release(): Promise<void> {
    if (--this.users > 0) return;
    this.scope.cancel();
    await Promise.all(this.leases);
    await this.taking?.catch(() => {}); // a failed take already failed its writers' feed
  }
}
