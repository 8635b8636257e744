/** Minimal ustar writing, as XAPI's tar_helpers: 512-byte headers, members padded to 512, two zero blocks at the end. */
export const TAR_BLOCK = 512;
export const TAR_END = Buffer.alloc(2 * TAR_BLOCK);

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0');
}

export function tarHeader(name: string, size: number, mtime = 0): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar member name too long: ${name}`);
  const h = Buffer.alloc(TAR_BLOCK);
  h.write(name, 0, 'utf8');
  h.write(`${octal(0o644, 8)}\0`, 100, 'latin1');
  h.write(`${octal(0, 8)}\0`, 108, 'latin1');
  h.write(`${octal(0, 8)}\0`, 116, 'latin1');
  h.write(`${octal(size, 12)}\0`, 124, 'latin1');
  h.write(`${octal(mtime, 12)}\0`, 136, 'latin1');
  h.fill(' ', 148, 156);
  h.write('0', 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${octal(sum, 7)}\0 `, 148, 'latin1');
  return h;
}

export function tarPadding(size: number): Buffer {
  const rest = size % TAR_BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : TAR_BLOCK - rest);
}
