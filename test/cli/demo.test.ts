// `npm start -- --once`: the whole demo from a fresh state directory, against the test run's
// Temporal server (TEMPORAL_ADDRESS given, so the demo starts none) on a namespace of its own.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runXcpb } from '../helpers/cli';
import { claimNamespace, temporalAddress } from '../helpers/temporal';

let stateDir: string;
let namespace: string;

beforeAll(async () => {
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-state-'));
  namespace = await claimNamespace();
});
afterAll(() => rm(stateDir, { recursive: true, force: true }));

it('runs prod-nightly twice, a full then a delta, and exits 0 with --once', async () => {
  const r = await runXcpb(['demo', '--once', '--port', '0'], {
    XCPB_STATE_DIR: stateDir,
    TEMPORAL_ADDRESS: temporalAddress(),
    TEMPORAL_NAMESPACE: namespace,
    XCPB_DEMO_PASSWORD: undefined,
  });
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  expect(r.stdout).toMatch(/schedules from examples\/config\.yaml: /);
  expect(r.stdout).toMatch(/run 1: full backup, success/);
  expect(r.stdout).toMatch(/run 2: delta backup, success/);
  for (const vm of ['web-prod-01', 'db-prod-01']) expect(r.stdout).toContain(`✓ ${vm} `);
  expect(r.stdout).not.toContain('build-dev-01'); // halted and tagged dev: not in prod-nightly
  expect(r.stdout).not.toContain('xcpb-demo'); // the pool's password
  expect(r.stdout).toMatch(/worker and simulator stopped/);
  // The example's remote was moved under the state directory: no root needed.
  expect((await readdir(path.join(stateDir, 'backups', 'xo-vm-backups'))).length).toBe(2);
});
