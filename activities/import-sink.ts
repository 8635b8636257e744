// An SR as a sink of the fan-out: the stream is PUT into a XAPI import handler (`/import` for an
// XVA, `/import_raw_vdi` for a VHD onto a prepared VDI) while the same bytes go to the remotes.
// Committed when XAPI's import task succeeds; aborted by cancelling it (XAPI then removes what the
// import created, as it does when the connection drops).
import { PassThrough } from 'node:stream';
import type { AtomicWrite } from '../remotes/remote';
import type { XapiClient } from '../xapi';
import type { Sink } from './fan-out';

export interface ImportSink extends Sink {
  /** the import task's result (the new VM's ref for `/import`), once committed */
  result(): string | undefined;
}

export function importSink(
  id: string,
  xapi: () => Promise<XapiClient>,
  path: '/import' | '/import_raw_vdi',
  /** the handler's query, resolved when the sink opens (refs are looked up then) */
  query: (xapi: XapiClient) => Promise<Record<string, string>>,
): ImportSink {
  let result: string | undefined;
  return {
    id,
    label: `SR target "${id}"`,
    result: () => result,
    async open(): Promise<AtomicWrite> {
      const client = await xapi();
      const resolved = await query(client);
      const body = new PassThrough();
      const stop = new AbortController();
      // Unknown length: XO's 1 PiB Content-Length hack, the socket closed after the body.
      const put = client.putResource(path, resolved, body, { signal: stop.signal });
      // An import refused mid-stream (SR full…) errors the stream, so the fan-out drops this
      // target at once instead of waiting on a drain that never comes.
      put.catch((err) => body.destroy(err));
      let settled = false;
      return {
        stream: body,
        async commit() {
          if (settled) return;
          if (!body.writableEnded) body.end();
          result = (await put).result;
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
