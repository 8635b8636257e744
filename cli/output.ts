// Small shared helpers of the xcpb commands: usage errors and colour.
export class UsageError extends Error {}

const useColour = () => process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: number) => (text: string) => (useColour() ? `\x1b[${code}m${text}\x1b[0m` : text);
export const green = paint(32);
export const red = paint(31);
export const orange = paint(33);
export const dim = paint(2);
export const bold = paint(1);

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
