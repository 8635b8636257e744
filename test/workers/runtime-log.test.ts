// The worker's log lines: a failed activity attempt in one line without a stack; the SDK's
// "No workflows registered" warning of activity-only workers not shown.
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { formatLogEntry } from '../../workers/runtime';

const at = 1_764_000_000_000n * 1_000_000n;

describe('formatLogEntry', () => {
  it('an activity failure is one line with the activity, attempt, run and reason', () => {
    const error = ApplicationFailure.retryable('SR_FULL: the SR is full\n  more text', 'XAPI_ERROR');
    const line = formatLogEntry({
      level: 'WARN',
      message: 'Activity failed',
      timestampNanos: at,
      meta: { activityType: 'exportDisk', attempt: 3, workflowId: 'xcpb:nightly:x/vm:1', error },
    });
    expect(line).toBe(
      '2025-11-24T16:00:00.000Z WARN activity exportDisk failed (attempt 3, xcpb:nightly:x/vm:1): XAPI_ERROR: SR_FULL: the SR is full more text',
    );
    expect(line).not.toContain('\n');
  });

  it('drops the "No workflows registered" warning and keeps other lines', () => {
    expect(
      formatLogEntry({
        level: 'WARN',
        message: 'No workflows registered, not polling for workflow tasks',
        timestampNanos: at,
      }),
    ).toBeUndefined();
    expect(
      formatLogEntry({
        level: 'ERROR',
        message: 'Worker failed',
        timestampNanos: at,
        meta: { error: new Error('boom') },
      }),
    ).toBe('2025-11-24T16:00:00.000Z ERROR Worker failed {"error":"boom"}');
  });
});
