// Durations as people write them in the config ("90s", "30m", "1h30m", "2d").

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds of a duration like "1h30m", or undefined when it does not parse. */
export function parseDuration(text: string): number | undefined {
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return undefined;
  return parts.reduce((total, [, n, unit]) => total + Number(n) * UNIT_MS[unit], 0);
}
