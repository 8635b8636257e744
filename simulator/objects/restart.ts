import { XapiFailure } from '../errors';
import type { PoolState } from '../pool';
import { failTask } from './tasks';
import { refreshAllowedOperations } from './vm';

/**
 * What a toolstack restart does to in-flight work: operations in progress are gone (cleared from
 * `current_operations`) and their pending tasks fail, so that no client waits forever.
 */
export function recoverAfterRestart(pool: PoolState): void {
  for (const [ref, t] of pool.db.all('task')) {
    if (t.status === 'pending' || t.status === 'cancelling') {
      failTask(
        pool,
        ref,
        new XapiFailure('INTERNAL_ERROR', ['the simulator restarted while this task was running']),
      );
    }
  }
  for (const cls of ['VM', 'VDI']) {
    for (const [ref, r] of pool.db.all(cls)) {
      if (Object.keys(r.current_operations as object).length > 0) {
        pool.db.update(cls, ref, (x) => {
          x.current_operations = {};
        });
        if (cls === 'VM') refreshAllowedOperations(pool, ref);
      }
    }
  }
}
