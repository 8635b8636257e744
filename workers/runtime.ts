// The Temporal runtime of a worker process, installed once: warnings and errors only, so a
// worker's output is about backups, not worker state changes.
import { DefaultLogger, Runtime } from '@temporalio/worker';

let installed = false;

export function installRuntime(
  opts: { level?: 'WARN' | 'INFO' | 'DEBUG'; handleSignals?: boolean } = {},
): void {
  if (installed) return;
  installed = true;
  Runtime.install({
    logger: new DefaultLogger(opts.level ?? 'WARN'),
    ...(opts.handleSignals === false ? { shutdownSignals: [] } : {}),
  });
}
