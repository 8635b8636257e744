/** Every malformed or inconsistent VHD is reported as a VhdError naming the file and the problem. */
export class VhdError extends Error {
  readonly file: string | undefined;
  readonly problem: string;
  readonly code: VhdProblemCode;
  constructor(code: VhdProblemCode, problem: string, file?: string) {
    super(file === undefined ? `VHD: ${problem}` : `${file}: ${problem}`);
    this.name = 'VhdError';
    this.code = code;
    this.problem = problem;
    this.file = file;
  }
}

export type VhdProblemCode =
  | 'NOT_FOUND'
  | 'TRUNCATED'
  | 'BAD_COOKIE'
  | 'BAD_CHECKSUM'
  | 'BAD_FIELD'
  | 'UNSUPPORTED'
  | 'BAT_PAST_END'
  | 'BAT_OVERLAP'
  | 'PARENT_UUID_MISMATCH'
  | 'PARENT_MISSING'
  | 'CHAIN_LOOP'
  | 'CHAIN_TOO_DEEP'
  | 'NOT_DIFFERENCING'
  | 'SIZE_MISMATCH'
  | 'MERGE_STATE';

/** Re-throws a VhdError with the file name filled in (pure decoders do not know it). */
export function withFile<T>(file: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof VhdError && e.file === undefined && file !== undefined) {
      throw new VhdError(e.code, e.problem, file);
    }
    throw e;
  }
}
