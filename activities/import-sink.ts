// An SR as a sink of the fan-out: the stream is PUT into a XAPI import handler (`/import` for an
// XVA, `/import_raw_vdi` for a VHD onto a prepared VDI) while the same bytes go to the remotes.
// Committed when XAPI's import task succeeds; aborted by cancelling it (XAPI then removes what the
// import created, as it does when the connection drops).
// With a task name the import happens once (activities/import-once): a retried export whose earlier
// attempt's import completed takes that import's result and discards its own copy of the bytes,
// instead of importing a second VM.
import { PassThrough, Writable } from 'node:stream';
import type { AtomicWrite } from '../remotes/remote';
import { type XapiClient, XapiError } from '../xapi';
import type { Sink } from './fan-out';
import { createImportTask, earlierImport, importedDespite } from './import-once';

export interface ImportSink extends Sink {
  /** the import task's result (the new VM's ref for `/import`), once committed */
  result(): string | undefined;
  /** XAPI's error when the import failed (SR_FULL…), with its code; once the import has ended */
  failure(): Promise<XapiError | undefined>;
}

/** The first ref of an import task's result (`/import` answers the set of VMs it made). */
const firstRef = (value: unknown) => (Array.isArray(value) ? String(value[0] ?? '') : String(value ?? ''));

export function importSink(
  id: string,
  xapi: () => Promise<XapiClient>,
  path: '/import' | '/import_raw_vdi',
  /** the handler's query, resolved when the sink opens (refs are looked up then) */
  query: (xapi: XapiClient) => Promise<Record<string, string>>,
  /** the import's task name: one import per name (undefined: a plain import) */
  taskName?: string,
): ImportSink {
  let result: string | undefined;
  let failure: XapiError | undefined;
  /** the upload, once opened: settles when XAPI has answered */
  let ended: Promise<unknown> = Promise.resolve();
  return {
    id,
    label: `SR target "${id}"`,
    result: () => result,
    async failure() {
      await ended;
      return failure;
    },
    async open(): Promise<AtomicWrite> {
      const client = await xapi();
      const earlier = taskName ? await earlierImport(client, taskName) : undefined;
      if (earlier) {
        result = firstRef(earlier.value);
        return discarding();
      }
      const resolved = await query(client);
      const taskRef = taskName ? await createImportTask(client, taskName) : undefined;
      const body = new PassThrough();
      const stop = new AbortController();
      // Unknown length: XO's 1 PiB Content-Length hack, the socket closed after the body.
      const put = client
        .putResource(path, resolved, body, { signal: stop.signal, taskRef })
        .then(({ result }) => result)
        .catch(async (err) => {
          // XAPI may have finished the import and the answer got lost: its result counts.
          const done = taskRef ? await importedDespite(client, taskRef) : undefined;
          if (done) return firstRef(done.value);
          if (err instanceof XapiError) failure = err;
          throw err;
        });
      // An import refused mid-stream (SR full…) errors the stream, so the fan-out drops this
      // target at once instead of waiting on a drain that never comes. (The upload may end the
      // stream first, "aborted": `failure()` keeps XAPI's reason for the outcome.)
      put.catch((err) => body.destroy(err));
      ended = put.catch(() => {});
      let settled = false;
      return {
        stream: body,
        async commit() {
          if (settled) return;
          if (!body.writableEnded) body.end();
          result = await put;
          settled = true;
        },
        async abort() {
          if (settled) return;
          settled = true;
          stop.abort();
          body.destroy();
          await put.catch(() => {});
        },
      };
    },
  };
}

/** A write that takes the bytes and keeps none: the import they were for is already done. */
function discarding(): AtomicWrite {
  return {
    stream: new Writable({
      write(_chunk, _encoding, done) {
        done();
      },
    }),
    async commit() {},
    async abort() {},
  };
}
