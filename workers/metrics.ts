// The worker's Prometheus metrics (`xcpb worker --metrics host:port`): the product's own, recorded
// from each finished VM backup and restore (workflows/metrics-interceptor.ts, through a sink) and
// from each merge (activities), plus the Temporal SDK's, which the runtime exports on a private
// local port and this endpoint serves alongside, so Prometheus scrapes one target per worker.
import http from 'node:http';
import type { InjectedSinks } from '@temporalio/worker';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { durationMs, type VmReport } from '../core/run-report';
import type { MetricsSinks } from '../workflows/metrics-interceptor';

const LONG_BUCKETS = [10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 28_800, 86_400];

export class ProductMetrics {
  readonly registry = new Registry();
  private readonly r = [this.registry];

  readonly bytesWritten = new Counter({
    name: 'xcpb_bytes_written_total',
    help: 'Bytes of backups written, per job and target (remote or SR)',
    labelNames: ['job_id', 'target'],
    registers: this.r,
  });
  readonly vmBackups = new Counter({
    name: 'xcpb_vm_backups_total',
    help: 'VM backups finished, per job, VM and outcome (success, failure, skipped)',
    labelNames: ['job_id', 'vm', 'vm_uuid', 'outcome'],
    registers: this.r,
  });
  readonly vmLastSuccess = new Gauge({
    name: 'xcpb_vm_last_success_timestamp_seconds',
    help: "Unix time of each VM's last successful backup, per job (alert when too old)",
    labelNames: ['job_id', 'vm', 'vm_uuid'],
    registers: this.r,
  });
  readonly backupDuration = new Histogram({
    name: 'xcpb_vm_backup_duration_seconds',
    help: 'Duration of one VM backup (snapshot to cleanup), per job',
    labelNames: ['job_id'],
    buckets: LONG_BUCKETS,
    registers: this.r,
  });
  readonly restoreDuration = new Histogram({
    name: 'xcpb_restore_duration_seconds',
    help: 'Duration of VM restores, per outcome',
    labelNames: ['outcome'],
    buckets: LONG_BUCKETS,
    registers: this.r,
  });
  readonly merges = new Counter({
    name: 'xcpb_merges_total',
    help: 'Delta merges done by retention, per remote',
    labelNames: ['remote'],
    registers: this.r,
  });
  readonly mergeDuration = new Histogram({
    name: 'xcpb_merge_duration_seconds',
    help: 'Duration of one delta merge, per remote',
    labelNames: ['remote'],
    buckets: [1, 5, 15, 60, 300, 900, 3600, 14_400],
    registers: this.r,
  });

  vmBackupEnded(jobId: string, report: VmReport): void {
    const vm = { job_id: jobId, vm: report.vmName, vm_uuid: report.vmUuid };
    this.vmBackups.inc({ ...vm, outcome: report.status });
    if (report.end)
      this.backupDuration.observe({ job_id: jobId }, durationMs(report.start, report.end) / 1000);
    if (report.status === 'success')
      this.vmLastSuccess.set(vm, (report.end ? Date.parse(report.end) : Date.now()) / 1000);
    for (const step of report.steps) {
      if (step.name === 'transfer' && step.status === 'success' && step.bytes && step.target)
        this.bytesWritten.inc({ job_id: jobId, target: step.target }, step.bytes);
    }
  }

  restoreEnded(ok: boolean, seconds: number): void {
    this.restoreDuration.observe({ outcome: ok ? 'success' : 'failure' }, seconds);
  }

  mergeDone(remoteId: string, seconds: number): void {
    this.merges.inc({ remote: remoteId });
    this.mergeDuration.observe({ remote: remoteId }, seconds);
  }
}

/** The workers' sinks: into `metrics` when given, else nowhere (a worker without --metrics). */
export function metricsSinks(metrics?: ProductMetrics): InjectedSinks<MetricsSinks> {
  return {
    metrics: {
      vmBackupEnded: { fn: (_info, jobId, report) => metrics?.vmBackupEnded(jobId, report) },
      restoreEnded: {
        fn: (info, ok) => metrics?.restoreEnded(ok, (Date.now() - info.runStartTime.getTime()) / 1000),
      },
    },
  };
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** Serves GET /metrics at host:port: the product's metrics, then the SDK's (from `sdkUrl`). */
export async function serveMetrics(
  hostPort: string,
  metrics: ProductMetrics,
  sdkUrl?: string,
): Promise<MetricsServer> {
  const i = hostPort.lastIndexOf(':');
  const host = i > 0 ? hostPort.slice(0, i) : '0.0.0.0';
  const port = Number(hostPort.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new Error(`--metrics wants host:port (e.g. 0.0.0.0:9464), got "${hostPort}"`);
  const server = http.createServer(async (req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('see /metrics\n');
      return;
    }
    try {
      let body = await metrics.registry.metrics();
      if (sdkUrl) {
        // The SDK's exporter may be briefly unavailable; the product's metrics are served regardless.
        const sdk = await fetch(sdkUrl).then(
          (r) => (r.ok ? r.text() : ''),
          () => '',
        );
        body += `\n${sdk}`;
      }
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
    } catch (err) {
      res.writeHead(500).end(`${(err as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const bound = server.address() as { port: number };
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${bound.port}/metrics`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
