/** A failure reported by XAPI: `ErrorDescription = [code, ...params]`. */
export class XapiError extends Error {
  readonly code: string;
  readonly params: string[];
  /** the call that failed, when known */
  readonly method?: string;

  constructor(code: string, params: readonly unknown[] = [], method?: string) {
    super(`${code}(${params.join(', ')})${method ? ` in ${method}` : ''}`);
    this.name = 'XapiError';
    this.code = code;
    this.params = params.map(String);
    this.method = method;
  }

  static fromDescription(desc: unknown, method?: string): XapiError {
    const list = Array.isArray(desc) ? desc.map(String) : [String(desc)];
    return new XapiError(list[0] ?? 'UNKNOWN_ERROR', list.slice(1), method);
  }
}

/** A transport-level failure (connection refused/reset, TLS, HTTP status), not an XAPI answer. */
export class XapiTransportError extends Error {
  constructor(
    message: string,
    readonly code?: string,
    readonly statusCode?: number,
  ) {
    super(message);
    this.name = 'XapiTransportError';
  }
}

/** Errors that mean the request never reached XAPI: safe to retry for any call. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
/** Errors after which the call may or may not have run: retried only for read-only calls. */
const MAYBE_SENT = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED']);

export function isRetryable(err: unknown, readOnly: boolean): boolean {
  const code = (err as { code?: string })?.code;
  if (!code) return false;
  return NOT_SENT.has(code) || (readOnly && MAYBE_SENT.has(code));
}

/** Calls that only read state (safe to repeat). */
export function isReadOnlyCall(method: string): boolean {
  return /\.get_/.test(method) || method.startsWith('event.from') || method === 'system.listMethods';
}
