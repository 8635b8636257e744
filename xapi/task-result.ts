import { Readable } from 'node:stream';
// @ts-expect-error the package's Deserializer has no types of its own
import Deserializer from 'xmlrpc/lib/deserializer.js';

/** Parses a task's `result` field: the XML-RPC serialisation of the value (or `""`). */
export function parseTaskResult(xml: string): Promise<unknown> {
  if (xml.trim() === '') return Promise.resolve('');
  const body = `<?xml version="1.0"?><methodResponse><params><param>${xml}</param></params></methodResponse>`;
  return new Promise((resolve, reject) => {
    new (Deserializer as any)('utf8').deserializeMethodResponse(
      Readable.from([Buffer.from(body)]),
      (err: Error | null, value: unknown) =>
        err
          ? reject(new Error(`unparseable task result ${JSON.stringify(xml.slice(0, 100))}: ${err.message}`))
          : resolve(value),
    );
  });
}
