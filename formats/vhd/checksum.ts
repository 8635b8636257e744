/** VHD checksum: ones' complement of the byte sum, with the checksum field itself counted as zero. */
export function vhdChecksum(buf: Uint8Array, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) {
    if (i >= checksumOffset && i < checksumOffset + 4) continue;
    sum = (sum + buf[i]) >>> 0;
  }
  return ~sum >>> 0;
}
