// No two runs of a job at once, whoever starts them (its schedules, `xcpb run`, `temporal workflow
// start`, the typed client): each run first starts the job's guard as its child, under the job's one
// guard id (core/job-input jobGuardWorkflowId). Temporal lets only one workflow run under an id, so
// exactly one run gets it; the others learn from the guard which run holds the job, and stop. The
// guard ends when its run releases it, or is terminated by the server when its run closes any other
// way (parent close policy), so a crashed or terminated run never keeps the job.

import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ChildWorkflowCancellationType,
  condition,
  defineSignal,
  getExternalWorkflowHandle,
  ParentClosePolicy,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { jobGuardWorkflowId } from '../core/job-input';
import { MAIN_QUEUE } from '../core/task-queues';

const releaseSignal = defineSignal('release');
/** Asks the guard to tell the asking run (its workflow id) which run holds the job. */
const whoHoldsSignal = defineSignal<[string]>('whoHolds');
/** The guard's answer to a run it refused: the holder's workflow id. */
export const heldBySignal = defineSignal<[string]>('heldBy');

export async function jobRunGuard(holder: string): Promise<void> {
  let released = false;
  setHandler(releaseSignal, () => {
    released = true;
  });
  setHandler(whoHoldsSignal, async (asking) => {
    await getExternalWorkflowHandle(asking)
      .signal(heldBySignal, holder)
      .catch(() => {}); // the asking run may be gone already
  });
  await condition(() => released);
}

export type JobSlot = { release(): Promise<void> } | { heldBy: string };

/** Takes the job's run slot for this workflow, or says which run holds it (workflow code only). */
export async function takeJobSlot(jobId: string): Promise<JobSlot> {
  const guardId = jobGuardWorkflowId(jobId);
  const me = workflowInfo().workflowId;
  let heldBy: string | undefined;
  setHandler(heldBySignal, (h) => {
    heldBy = h;
  });
  try {
    const guard = await startChild(jobRunGuard, {
      workflowId: guardId,
      taskQueue: MAIN_QUEUE,
      args: [me],
      parentClosePolicy: ParentClosePolicy.TERMINATE,
      // Cancelling the run does not free the job: its VMs still clean up. The guard goes when it ends.
      cancellationType: ChildWorkflowCancellationType.ABANDON,
    });
    return {
      async release() {
        await guard.signal(releaseSignal);
        await guard.result();
      },
    };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    await getExternalWorkflowHandle(guardId)
      .signal(whoHoldsSignal, me)
      .catch(() => {}); // the holder ended meanwhile: named as unknown below
    await condition(() => heldBy !== undefined, '30s');
    return { heldBy: heldBy ?? '(a run that has just ended)' };
  }
}
