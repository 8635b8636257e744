import { VHD_EPOCH_OFFSET } from './constants';

/** VHD timestamps are seconds since 2000-01-01T00:00:00Z, unsigned 32-bit. */
export function toVhdTime(d: Date): number {
  const s = Math.floor(d.getTime() / 1000) - VHD_EPOCH_OFFSET;
  return Math.min(Math.max(s, 0), 0xffffffff);
}

export function fromVhdTime(s: number): Date {
  return new Date((s + VHD_EPOCH_OFFSET) * 1000);
}
