// The Temporal runtime of a worker process, installed once: warnings and errors only, so a
// worker's output is about backups, not worker state changes. A failed activity attempt is routine
// (retried, and reported in the run's report): one line, no stack. The SDK's "No workflows
// registered" warning of the pool workers (they run activities only, by design) is not shown.
import { DefaultLogger, type LogEntry, Runtime, type RuntimeOptions } from '@temporalio/worker';

let installed = false;

export function installRuntime(
  opts: {
    level?: 'WARN' | 'INFO' | 'DEBUG';
    handleSignals?: boolean;
    /** Prometheus exporter of the SDK's own metrics (workers/metrics.ts) */
    telemetryOptions?: RuntimeOptions['telemetryOptions'];
  } = {},
): void {
  if (installed) return;
  installed = true;
  Runtime.install({
    logger: new DefaultLogger(opts.level ?? 'WARN', writeLogLine),
    ...(opts.handleSignals === false ? { shutdownSignals: [] } : {}),
    ...(opts.telemetryOptions ? { telemetryOptions: opts.telemetryOptions } : {}),
  });
}

/** One log entry as one line, or nothing; exported for tests. */
export function formatLogEntry(entry: LogEntry): string | undefined {
  const { level, message, meta } = entry;
  if (message.startsWith('No workflows registered')) return undefined;
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  if (message === 'Activity failed' && meta) {
    const error = meta.error as Error | undefined;
    const reason = (error?.message ?? String(error)).replace(/\s+/g, ' ').trim();
    const type = (error as { type?: string } | undefined)?.type;
    return (
      `${time} ${level} activity ${meta.activityType} failed (attempt ${meta.attempt}` +
      `${meta.workflowId ? `, ${meta.workflowId}` : ''}): ${type ? `${type}: ` : ''}${reason}`
    );
  }
  const extra = meta && Object.keys(meta).length > 0 ? ` ${JSON.stringify(meta, errorsAsText)}` : '';
  return `${time} ${level} ${message}${extra}`;
}

function errorsAsText(_key: string, value: unknown) {
  return value instanceof Error ? value.message : typeof value === 'bigint' ? String(value) : value;
}

function writeLogLine(entry: LogEntry): void {
  const line = formatLogEntry(entry);
  if (line !== undefined) process.stderr.write(`${line}\n`);
}
