// Small shared helpers of the xcpb commands: usage errors, colour (picocolors: off when stdout is
// not a terminal or NO_COLOR is set), counts as people read them (times: cli/zones.ts).
import pc from 'picocolors';
import type { Style } from './report-format';

export class UsageError extends Error {}

export const green = pc.green;
export const red = pc.red;
export const orange = pc.yellow;
export const dim = pc.dim;
export const bold = pc.bold;

/** The colours of a terminal, for the pure formatters (cli/report-format.ts). */
export const terminalStyle: Style = { green, red, orange, dim, bold };

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export { plural } from '../core/words';
