// Runs in flight survive an upgrade only if today's workflow code makes the same decisions as the
// code that wrote their history. The histories under histories/ (a full run, a delta run with its
// health check, a cancelled run, a restore, recorded before runs went in batches, so they replay
// through patched('vm-batches'); and a run in batches; each with its children) were recorded by
// record-histories.ts; every one must replay without a nondeterminism error. And the test can fail:
// the same histories replayed against a bundle whose backupVm swaps two activities do fail.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, type ReplayResult, Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { workflowsPath } from '../../workers/workers';
import { sharedBundle } from '../helpers/backup-stack';

const DIR = path.join(import.meta.dirname, 'histories');

async function histories(file: string) {
  const saved = JSON.parse(await readFile(path.join(DIR, file), 'utf8')) as {
    workflowId: string;
    history: unknown;
  }[];
  return saved.map((h) => ({ workflowId: h.workflowId, history: historyFromJSON(h.history) }));
}

async function replayAll(workflowBundle: { code: string }, file: string): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle }, await histories(file))) results.push(r);
  return results;
}

const files = (await readdir(DIR)).filter((f) => f.endsWith('.json')).sort();

describe('replay of recorded histories', () => {
  it('covers a full run, a delta run with a health check, a cancelled run and a restore (recorded before batches), a run in batches, and lean full and delta runs', async () => {
    expect(files).toEqual([
      'batched-run.json',
      'cancelled-run.json',
      'delta-run-lean.json', // recorded after patched('xcpb-vm-lean-run'): local bookkeeping
      'delta-run.json',
      'full-run-lean.json',
      'full-run.json',
      'restore.json',
    ]);
    const types = new Set<string>();
    for (const f of files)
      for (const h of await histories(f))
        types.add(h.history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?');
    expect([...types].sort()).toEqual([
      'backupBatch',
      'backupJob',
      'backupVm',
      'healthCheck',
      'jobRunGuard',
      'restoreVm',
    ]);
  });

  it.each(files)('%s replays against the current workflow code', async (file) => {
    const results = await replayAll(await sharedBundle(), file);
    expect(results.length).toBeGreaterThan(0);
    for (const r of results) expect(r.error, `${r.workflowId}: ${r.error}`).toBeUndefined();
  });

  it("a backupVm that swaps two activities' order fails the replay (nondeterminism)", async () => {
    const mutant = await bundleWorkflowCode({
      workflowsPath,
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
      webpackConfigHook: (config) => {
        config.module?.rules?.push({
          test: /workflows[\\/]backup-vm\.ts$/,
          enforce: 'pre',
          use: [{ loader: path.join(import.meta.dirname, 'swap-activity-order-loader.cjs') }],
        });
        return config;
      },
    });
    const results = await replayAll(mutant, 'delta-run.json');
    const vm = results.find((r) => r.workflowId.includes('/vm:') && !r.workflowId.endsWith('/health-check'));
    expect(vm?.error?.name).toBe('DeterminismViolationError');
    // The parent's own decisions did not change: only the VM's history breaks.
    expect(results.find((r) => !r.workflowId.includes('/vm:'))?.error).toBeUndefined();
  });
});
