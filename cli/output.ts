// Small shared helpers of the xcpb commands: usage errors, colour (picocolors: off when stdout is
// not a terminal or NO_COLOR is set), counts as people read them (times: cli/zones.ts).
import pc from 'picocolors';
import type { Style } from './report-format';

export class UsageError extends Error {}

/**
 * Colour only on a terminal and without NO_COLOR (FORCE_COLOR forces it). Decided here rather than
 * by picocolors alone, which also colours any output when a CI variable is set, pipes included.
 */
export function colourWanted(stream: { isTTY?: boolean } = process.stdout, env = process.env): boolean {
  if ('NO_COLOR' in env) return false;
  if ('FORCE_COLOR' in env) return env.FORCE_COLOR !== '0';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

const colours = pc.createColors(colourWanted());
export const green = colours.green;
export const red = colours.red;
export const orange = colours.yellow;
export const dim = colours.dim;
export const bold = colours.bold;

/** The colours of a terminal, for the pure formatters (cli/report-format.ts). */
export const terminalStyle: Style = { green, red, orange, dim, bold };

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export { plural } from '../core/words';
