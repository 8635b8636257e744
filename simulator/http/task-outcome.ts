import { XapiFailure } from '../errors';
import { failTask } from '../objects/tasks';
import type { Transfer } from './transfer';

/** Fails the transfer's task with `e`, or with TASK_CANCELLED when it was cancelled meanwhile. */
export function failTaskOrCancel(t: Transfer, e: unknown): void {
  const status = t.pool.db.tryGet('task', t.task)?.status;
  failTask(t.pool, t.task, status === 'cancelling' ? new XapiFailure('TASK_CANCELLED', [t.task]) : e);
}
