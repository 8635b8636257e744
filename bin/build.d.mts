// Types of bin/build.mjs (plain JavaScript, run by node without a loader).
/** Builds the `xcpb` command into `outfile` (default dist/xcpb.mjs); resolves to its path. */
export function buildCommand(outfile?: string): Promise<string>;
