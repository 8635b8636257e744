// How long a health check may take: the configured timeout, else one that grows with the bytes to
// restore (a fixed 10 minutes, as XO has, fails big VMs whose restore alone takes longer). Pure.
import { parseDuration } from './duration';

/** Time to boot and report, whatever the size. */
export const HEALTH_CHECK_BASE_MS = 10 * 60_000;
/** Restore throughput assumed for the budget: conservative, a slow SR or link. */
export const HEALTH_CHECK_ASSUMED_BYTES_PER_SECOND = 20 * 1024 * 1024;
export const HEALTH_CHECK_MAX_MS = 24 * 3_600_000;

export function healthCheckTimeoutMs(restoredBytes: number, configured?: string): number {
  if (configured !== undefined) {
    const ms = parseDuration(configured);
    if (ms === undefined || ms <= 0)
      throw new RangeError(`healthCheck.timeout ${JSON.stringify(configured)} is not a duration`);
    return ms;
  }
  const transfer = (Math.max(0, restoredBytes) / HEALTH_CHECK_ASSUMED_BYTES_PER_SECOND) * 1000;
  return Math.min(HEALTH_CHECK_MAX_MS, Math.ceil(HEALTH_CHECK_BASE_MS + transfer));
}

/** Whether a VM with `vmTags` is checked, given the schedule's `healthCheck.tags` (none = all). */
export function healthCheckApplies(vmTags: readonly string[], wanted?: readonly string[]): boolean {
  return !wanted || wanted.length === 0 || wanted.some((t) => vmTags.includes(t));
}
