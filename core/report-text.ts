// The run report as people receive it (email subject, plain text and HTML; XO's report plugins send
// the same): per VM its outcome, size, duration and reason. Pure: the activity sends what this writes.
import type { ReportsConfig } from './config/schema';
import { durationMs, type RunReport, type Status, type VmReport } from './run-report';
import { formatBytes, plural } from './words';

/** Whether a run with this outcome gets a report. */
export function reportWanted(when: ReportsConfig['when'], status: Status): boolean {
  return when === 'always' || (when === 'failure' && status === 'failure');
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function vmLine(vm: VmReport): { name: string; status: string; size: string; time: string; reason: string } {
  const bytes = vm.steps.filter((s) => s.name === 'export').reduce((n, s) => n + (s.bytes ?? 0), 0);
  const failed = vm.steps.find((s) => s.status === 'failure');
  const reason =
    vm.error?.message ??
    (failed
      ? `${failed.name}${failed.target ? ` ${failed.target}` : ''}: ${failed.error?.message ?? 'failed'}`
      : (vm.detail ?? ''));
  return {
    name: vm.vmName,
    status: vm.status,
    size: bytes ? formatBytes(bytes) : '-',
    time: vm.end ? duration(durationMs(vm.start, vm.end)) : '-',
    reason: vm.status === 'success' ? '' : reason,
  };
}

export function reportSubject(r: RunReport): string {
  const failed = r.vms.filter((v) => v.status === 'failure').length;
  const what = failed ? `${failed} of ${plural(r.vms.length, 'VM')} failed` : plural(r.vms.length, 'VM');
  return `[xcp-backup] ${r.status.toUpperCase()} ${r.jobId} (${r.mode}): ${what}`;
}

export function reportText(r: RunReport): string {
  const lines = [
    `Job ${r.jobId} (${r.mode}${r.scheduleId ? `, schedule ${r.scheduleId}` : ''}): ${r.status}`,
    `Run ${r.workflowId}`,
    `Started ${r.start}${r.end ? `, ${duration(durationMs(r.start, r.end))}` : ''}`,
  ];
  if (r.reason) lines.push(`Reason: ${r.reason}`);
  lines.push('');
  for (const vm of r.vms.map(vmLine))
    lines.push(
      `${vm.status.padEnd(8)} ${vm.name}  ${vm.size}  ${vm.time}${vm.reason ? `  ${vm.reason}` : ''}`,
    );
  return `${lines.join('\n')}\n`;
}

const escapeHtml = (t: string) =>
  t.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const COLOURS: Record<string, string> = { success: '#1a7f37', failure: '#cf222e', skipped: '#9a6700' };

export function reportHtml(r: RunReport): string {
  const rows = r.vms
    .map(vmLine)
    .map(
      (vm) =>
        `<tr><td>${escapeHtml(vm.name)}</td><td style="color:${COLOURS[vm.status] ?? 'inherit'}">${escapeHtml(vm.status)}</td>` +
        `<td>${escapeHtml(vm.size)}</td><td>${escapeHtml(vm.time)}</td><td>${escapeHtml(vm.reason)}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html><body style="font-family:sans-serif">
<h2 style="color:${COLOURS[r.status] ?? 'inherit'}">${escapeHtml(reportSubject(r))}</h2>
<p>Run <code>${escapeHtml(r.workflowId)}</code>, started ${escapeHtml(r.start)}${r.reason ? `<br>${escapeHtml(r.reason)}` : ''}</p>
<table border="1" cellpadding="4" cellspacing="0">
<tr><th>VM</th><th>status</th><th>size</th><th>duration</th><th>reason</th></tr>
${rows}
</table>
</body></html>
`;
}
