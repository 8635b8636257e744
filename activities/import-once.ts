// XAPI imports that happen once, however often the activity runs. The import's task is created
// first, with a name derived from what is imported (the restore id and the disk), and passed as
// `task_id`; it is kept after the import. A retried attempt (the worker died after the import
// finished, before its result was recorded) finds the task by its name and takes its result instead
// of importing a second time. The caller forgets the task once the result is recorded elsewhere
// (e.g. the imported VM is marked with the restore id).
import { parseTaskResult, type XapiClient } from '../xapi';

interface TaskRecord {
  name_label: string;
  status: string;
  result: string;
}

export interface ImportOnce {
  /** The task's result (e.g. the imported VM's ref as XAPI returns it). */
  value: unknown;
  taskRef: string;
  /** true when an earlier attempt's import was found instead of importing again */
  reused: boolean;
}

export async function importOnce(
  xapi: XapiClient,
  taskName: string,
  put: (taskRef: string) => Promise<{ value: unknown }>,
): Promise<ImportOnce> {
  const earlier = await earlierImport(xapi, taskName);
  if (earlier) return earlier;
  const taskRef = await createImportTask(xapi, taskName);
  try {
    const { value } = await put(taskRef);
    return { value, taskRef, reused: false };
  } catch (error) {
    const done = await importedDespite(xapi, taskRef);
    if (done) return done;
    throw error;
  }
}

/**
 * The import an earlier attempt made under this task name, when it completed; undefined when there
 * is none (a failed or interrupted one is forgotten first: the caller imports again).
 */
export async function earlierImport(xapi: XapiClient, taskName: string): Promise<ImportOnce | undefined> {
  const tasks = await xapi.getAllRecords<TaskRecord>('task');
  for (const [ref, task] of Object.entries(tasks)) {
    if (task.name_label !== taskName) continue;
    if (task.status === 'success')
      return { value: await parseTaskResult(task.result), taskRef: ref, reused: true };
    if (task.status === 'pending') {
      // An earlier attempt's upload, its worker gone: XAPI ends the task when the connection drops.
      // Should it have completed meanwhile, its result is taken; otherwise it is discarded.
      await xapi.cancelTask(ref).catch(() => {});
      const value = await xapi.waitTask(ref).then(
        (v) => ({ ok: true as const, v }),
        () => ({ ok: false as const }),
      );
      if (value.ok) return { value: value.v, taskRef: ref, reused: true };
    }
    await forgetImport(xapi, ref);
  }
  return undefined;
}

/** The named task an import is tracked by (passed as `task_id`). */
export function createImportTask(xapi: XapiClient, taskName: string): Promise<string> {
  return xapi.call<string>('task.create', taskName, 'xcp-backup import (kept until its result is recorded)');
}

/**
 * After an upload failed: the import's result when XAPI finished it anyway (a lost answer); else
 * the task is forgotten and undefined returned.
 */
export async function importedDespite(xapi: XapiClient, taskRef: string): Promise<ImportOnce | undefined> {
  const task = await xapi.getRecord<TaskRecord>('task', taskRef).catch(() => undefined);
  if (task?.status === 'success')
    return { value: await parseTaskResult(task.result), taskRef, reused: false };
  await forgetImport(xapi, taskRef);
  return undefined;
}

/**
 * Forgets the import tasks whose name starts with `prefix` (their results are recorded, or their
 * imports are leftovers being destroyed); `finishedOnly` spares those still running.
 */
export async function forgetImports(
  xapi: XapiClient,
  prefix: string,
  o: { finishedOnly?: boolean } = {},
): Promise<void> {
  for (const [ref, task] of Object.entries(await xapi.getAllRecords<TaskRecord>('task'))) {
    if (!task.name_label.startsWith(prefix)) continue;
    if (o.finishedOnly && task.status === 'pending') continue;
    await forgetImport(xapi, ref);
  }
}

/** Destroys an import's task once its result is recorded (or the import failed). */
export async function forgetImport(xapi: XapiClient, taskRef: string): Promise<void> {
  await xapi.call('task.destroy', taskRef).catch(() => {});
}
