// How far a running restore is: its phase (the `progress` query) and the bytes its imports have
// heartbeated, against the bytes the backup holds. For `xcpb restore`'s progress bar.
import type { Client } from '@temporalio/client';
import type { RestoreProgress } from '../workflows/restore-vm';

export interface RestoreState {
  running: boolean;
  phase: RestoreProgress['phase'];
  vmName?: string;
  bytes: number;
  total?: number;
}

const IMPORTS = new Set(['importRestoreDisk', 'importRestoreXva']);

export async function getRestoreState(client: Client, workflowId: string): Promise<RestoreState> {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const running = description.status.name === 'RUNNING';
  const progress = running
    ? await client
        .withDeadline(Date.now() + 10_000, () => handle.query<RestoreProgress>('progress'))
        .catch(() => undefined)
    : undefined;
  const converter = client.options.loadedDataConverter.payloadConverter;
  let bytes = 0;
  for (const a of description.raw.pendingActivities ?? []) {
    const payload = a.heartbeatDetails?.payloads?.[0];
    if (!IMPORTS.has(a.activityType?.name ?? '') || !payload) continue;
    bytes += converter.fromPayload<{ bytes?: number }>(payload)?.bytes ?? 0;
  }
  return {
    running,
    phase: progress?.phase ?? (running ? 'inspect' : 'done'),
    vmName: progress?.plan?.vmName,
    bytes,
    total: progress?.plan?.restoreBytes,
  };
}
