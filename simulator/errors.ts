/** A XAPI failure: `ErrorDescription = [code, ...params]` on the wire. */
export class XapiFailure extends Error {
  readonly code: string;
  readonly params: string[];
  constructor(code: string, params: readonly unknown[] = []) {
    super(`${code}(${params.join(', ')})`);
    this.name = 'XapiFailure';
    this.code = code;
    this.params = params.map((p) => String(p));
  }
  get description(): string[] {
    return [this.code, ...this.params];
  }
}

export function fail(code: string, ...params: unknown[]): never {
  throw new XapiFailure(code, params);
}

/** Any thrown value as XAPI's ErrorDescription (unknown exceptions become INTERNAL_ERROR). */
export function toErrorDescription(e: unknown): string[] {
  if (e instanceof XapiFailure) return e.description;
  return ['INTERNAL_ERROR', e instanceof Error ? e.message : String(e)];
}
