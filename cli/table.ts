// The CLI's tables (cli-table3). Colour is painted by the caller's Style (picocolors: none when
// stdout is not a terminal or NO_COLOR is set); cli-table3's own colouring is off, as it ignores
// NO_COLOR. Widths are measured without colour codes.
import Table from 'cli-table3';
import type { Style } from './report-format';

export function formatTable(
  head: readonly string[],
  rows: readonly string[][],
  style?: Pick<Style, 'bold'>,
): string {
  // Columns as `docker ps` has them; boxes only when a cell spans lines (`xcpb schedules`' next
  // runs), where rows would run into each other without rules.
  const multiLine = rows.some((row) => row.some((cell) => cell.includes('\n')));
  const table = new Table({
    head: head.map((h) => (style ? style.bold(h) : h)),
    style: multiLine
      ? { head: [], border: [] }
      : { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
    ...(multiLine ? {} : { chars: BARE }),
  });
  table.push(...rows);
  // Bare columns end in padding: trimmed, so a line ends where its text does.
  return multiLine ? table.toString() : table.toString().replace(/ +$/gm, '');
}

const BARE = Object.fromEntries(
  [
    'top',
    'top-mid',
    'top-left',
    'top-right',
    'bottom',
    'bottom-mid',
    'bottom-left',
    'bottom-right',
    'left',
    'left-mid',
    'mid',
    'mid-mid',
    'right',
    'right-mid',
  ].map((c) => [c, '']),
);
BARE.middle = '  ';
