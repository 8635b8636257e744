import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

// The product's state folder (workflow bundle cache, reports of runs without a remote, mounts) is
// one folder of this test run, never the user's ~/.local/state/xcpb: tests write nothing outside it.
const stateDir = mkdtempSync(path.join(os.tmpdir(), 'xcpb-test-state-'));

// One Temporal dev server for the whole run (test/setup/temporal-server.ts); forks, not threads,
// because the Temporal native bridge misbehaves in worker threads.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/temporal-server.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    fileParallelism: true,
    maxWorkers: 2,
    env: { XCPB_STATE_DIR: stateDir },
    // In CI also a JSON report, from which .ci/run prints the plain 'N passed, N failed' line.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: process.env.CI ? { json: '.vitest-report.json' } : undefined,
  },
});
