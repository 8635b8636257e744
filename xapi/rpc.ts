import type { Agent as HttpAgent } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import xmlrpc from 'xmlrpc';
import { isReadOnlyCall, isRetryable, XapiError, XapiTransportError } from './errors';

export interface RpcOptions {
  url: URL;
  allowUnauthorized: boolean;
  /** attempts for transient network failures (default 5) */
  retries?: number;
  agent?: HttpAgent;
}

/** One XML-RPC endpoint of XAPI: unwraps `{Status, Value}`, turns failures into XapiError. */
export class XapiRpc {
  private readonly client: xmlrpc.Client;
  private readonly retries: number;

  constructor(opts: RpcOptions) {
    const secure = opts.url.protocol === 'https:';
    const options: any = {
      host: opts.url.hostname,
      port: Number(opts.url.port) || (secure ? 443 : 80),
      path: '/',
      agent: opts.agent,
    };
    if (secure) options.rejectUnauthorized = !opts.allowUnauthorized;
    this.client = secure ? xmlrpc.createSecureClient(options) : xmlrpc.createClient(options);
    this.retries = opts.retries ?? 5;
  }

  private raw(method: string, params: unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.client.methodCall(method, params as any[], (err: any, value: unknown) => {
        if (!err) return resolve(value);
        if (err.code && typeof err.code === 'string') {
          return reject(new XapiTransportError(`${method}: ${err.message}`, err.code));
        }
        const status = err.res?.statusCode;
        reject(new XapiTransportError(`${method}: ${err.message}`, undefined, status));
      });
    });
  }

  /** Calls `method`, retrying transient network failures with backoff. */
  async call(method: string, params: unknown[], signal?: AbortSignal): Promise<unknown> {
    const readOnly = isReadOnlyCall(method);
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      let answer: unknown;
      try {
        answer = await this.raw(method, params);
      } catch (e) {
        if (attempt < this.retries && isRetryable(e, readOnly)) {
          await sleep(Math.min(2000, 100 * 2 ** attempt), undefined, { signal });
          continue;
        }
        throw e;
      }
      if (method === 'system.listMethods') return answer;
      return unwrap(answer, method);
    }
  }
}

export function unwrap(answer: unknown, method: string): unknown {
  const a = answer as { Status?: string; Value?: unknown; ErrorDescription?: unknown };
  if (a && a.Status === 'Success') return a.Value;
  if (a && a.Status === 'Failure') throw XapiError.fromDescription(a.ErrorDescription, method);
  throw new XapiTransportError(
    `${method}: unexpected XML-RPC answer ${JSON.stringify(answer)?.slice(0, 200)}`,
  );
}
