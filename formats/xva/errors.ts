/** A malformed or tampered XVA: names the file (when known), the member and the problem. */
export class XvaError extends Error {
  readonly file: string | undefined;
  readonly member: string | undefined;
  readonly problem: string;
  readonly code: XvaProblemCode;
  constructor(code: XvaProblemCode, problem: string, opts: { file?: string; member?: string } = {}) {
    const where = [opts.file, opts.member].filter(Boolean).join(': ');
    super(where ? `${where}: ${problem}` : `XVA: ${problem}`);
    this.name = 'XvaError';
    this.code = code;
    this.problem = problem;
    this.file = opts.file;
    this.member = opts.member;
  }
}

export type XvaProblemCode =
  | 'NO_OVA_XML'
  | 'BAD_OVA_XML'
  | 'CHECKSUM_MISMATCH'
  | 'MISSING_CHECKSUM'
  | 'BAD_MEMBER'
  | 'TRUNCATED';
