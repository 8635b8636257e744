// The pure parts of a big run: its selection in pages, its bounded tally, the stored report's
// folder name; and the stored report itself on a real local remote (parts merged, idempotent),
// read back by the client through the config's remote.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fullRunReport, type ReportConfig } from '../../client/stored-report';
import {
  addTally,
  durationMs,
  emptyTally,
  FAILED_NAMED,
  inlineReportOf,
  type RunReport,
  type RunResult,
  SUMMARY_MESSAGE_CHARS,
  tallyOutcome,
  tallyVm,
  type VmReport,
} from '../../core/run-report';
import { type SelectedVm, selectionPage } from '../../core/vm-selection';
import { RUN_REPORTS_DIR, runFolderName, runReportPaths } from '../../remotes/backup-paths';
import { createLocalRemote } from '../../remotes/local';
import {
  finishRunReport,
  readRunReport,
  readRunReportParts,
  writeRunReportPart,
} from '../../remotes/run-reports';

const vm = (i: number, status: VmReport['status'] = 'success', message = 'boom'): VmReport => ({
  vmUuid: `uuid-${String(i).padStart(4, '0')}`,
  vmName: `vm-${i}`,
  poolId: 'p',
  workflowId: `run/vm:uuid-${i}`,
  status,
  start: '2026-01-15T02:00:00.000Z',
  end: '2026-01-15T02:00:01.500Z',
  ...(status === 'failure' ? { error: { code: 'X', message } } : {}),
  steps: [{ name: 'export', status: 'success', start: '2026-01-15T02:00:00.000Z', bytes: 10 }],
});

describe('selection pages', () => {
  const all = (n: number): SelectedVm[] =>
    Array.from({ length: n }, (_, i) => ({
      uuid: `u${String(i).padStart(3, '0')}`,
      name: `z-${n - i}`,
      poolId: 'p',
    }));

  it('every VM on exactly one page, even when VMs are renamed or added between pages', () => {
    const vms = all(25);
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      // Between pages: a VM renamed, a VM added before the cursor and one after it.
      const listing =
        pages === 1
          ? [
              ...vms.map((v) => ({ ...v, name: `renamed-${v.name}` })),
              { uuid: 'u000a', name: 'new', poolId: 'p' },
            ]
          : vms;
      const page = selectionPage(listing, after, 10);
      seen.push(...page.selected.map((v) => v.uuid));
      expect([...page.selected].sort((a, b) => a.name.localeCompare(b.name))).toEqual(page.selected);
      after = page.next;
      pages++;
    } while (after);
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(seen.length);
    for (const v of vms) expect(seen).toContain(v.uuid);
  });

  it('a selection that fits one page has no next', () => {
    expect(selectionPage(all(3), undefined, 10).next).toBeUndefined();
    expect(selectionPage(all(10), undefined, 10).next).toBeUndefined();
    expect(selectionPage(all(11), undefined, 10).next).toBe('u009');
  });
});

describe('tally', () => {
  it('counts, bytes, the first failed VMs named and the rest counted, long messages cut', () => {
    const a = emptyTally();
    for (let i = 0; i < 15; i++) tallyVm(a, vm(i, 'failure', 'x'.repeat(5_000)));
    const b = emptyTally();
    for (let i = 15; i < 30; i++) tallyVm(b, vm(i, i % 2 ? 'failure' : 'success'));
    const t = addTally(a, b);
    expect(t.counts).toEqual({ vms: 30, success: 7, failure: 23, skipped: 0, running: 0 });
    expect(t.bytes).toBe(300);
    expect(t.failed).toHaveLength(FAILED_NAMED);
    expect(t.failedMore).toBe(23 - FAILED_NAMED);
    expect(t.failed[0].error?.message.length).toBe(SUMMARY_MESSAGE_CHARS);
    expect(tallyOutcome(t.counts)).toBe('failure');
    expect(tallyOutcome(emptyTally().counts)).toBe('skipped');
  });

  it('report times are ISO 8601; durations read them (and old epoch milliseconds)', () => {
    expect(durationMs('2026-01-15T02:00:00.000Z', '2026-01-15T02:00:01.500Z')).toBe(1_500);
    expect(durationMs(1_000, 2_500)).toBe(1_500);
    expect(durationMs('2026-01-15T02:00:00.000Z', undefined, Date.parse('2026-01-15T02:00:03Z'))).toBe(3_000);
  });
});

describe('the stored run report', () => {
  it("a run's folder name is one safe segment, different for different ids", () => {
    const ids = [
      'xcpb:nightly:manual-2026-01-15T02:00:00.000Z',
      'xcpb_nightly_manual',
      'a~3Ab',
      'a:b',
      '..',
      '.x',
      'é/ü',
    ];
    const names = ids.map(runFolderName);
    expect(new Set(names).size).toBe(ids.length);
    for (const n of names) expect(n).toMatch(/^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/);
    expect(runReportPaths(ids[0]).report).toBe(`${RUN_REPORTS_DIR}/${names[0]}/report.json`);
  });

  let dir: string | undefined;
  afterEach(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));

  it('parts merged into report.json, parts removed; a retry gives the same report', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-run-report-'));
    const remote = createLocalRemote({ id: 'r', root: dir });
    const id = 'xcpb:j:manual-2026-01-15T02:00:00.000Z';
    await writeRunReportPart(remote, id, 0, 0, [vm(1), vm(2)]);
    await writeRunReportPart(remote, id, 0, 1, [vm(3, 'failure')]);
    await writeRunReportPart(remote, id, 1, 0, [vm(4)]);
    expect((await readRunReportParts(remote, id)).map((v) => v.vmName)).toEqual([
      'vm-1',
      'vm-2',
      'vm-3',
      'vm-4',
    ]);
    const header: RunReport = {
      workflowId: id,
      jobId: 'j',
      mode: 'delta',
      status: 'failure',
      start: '2026-01-15T02:00:00.000Z',
      end: '2026-01-15T02:10:00.000Z',
      vms: [{ ...vm(0, 'failure'), workflowId: '', vmName: '?' }],
    };
    const full = await finishRunReport(remote, header);
    expect(full.vms.map((v) => v.vmName)).toEqual(['?', 'vm-1', 'vm-2', 'vm-3', 'vm-4']);
    expect(await readRunReportParts(remote, id)).toEqual([]);
    expect(await readRunReport(remote, id)).toEqual(full);
    // Retried after it had written (a worker died before answering): the same report.
    expect(await finishRunReport(remote, header)).toEqual(full);
    expect(inlineReportOf(full)).toEqual(full);

    // The client reads it through the config's remote (read-only), or says what it needs.
    const { vms: _, ...summary } = full;
    const result: RunResult = {
      ...summary,
      ...full.vms.reduce(tallyVm, emptyTally()),
      stored: { remoteId: 'r', path: runReportPaths(id).report },
      reports: [{ name: 'email', status: 'success', start: full.start }],
    };
    const config = { remotes: [{ id: 'r', url: `file://${dir}` }] } as ReportConfig;
    expect(await fullRunReport(result, config)).toEqual({ ...full, reports: result.reports });
    await expect(fullRunReport(result, undefined)).rejects.toThrow(
      `the full report of run ${id} is on remote "r" (${runReportPaths(id).report}): read it with the config that defines that remote (--config)`,
    );
  });
});
