// One Temporal dev server for the whole test run, on free ports, from the same provisioning code as
// `xcpb server install`. Tests read its address with `inject('temporalAddress')`.
// XCPB_TEST_TEMPORAL=off skips it for suites that need no server.
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { startOwnedDevServer } from '../../server/dev-server';
import { ensureTemporalCli } from '../../server/temporal-cli';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalCli: string;
    namespaceClaims: string;
  }
}

/** One namespace per integration test file (claimed by test/helpers/temporal.ts), so the workers of
 * files running in parallel never take each other's tasks. */
export const TEST_NAMESPACES = Array.from({ length: 48 }, (_, i) => `xcpb-test-${i}`);

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (process.env.XCPB_TEST_TEMPORAL === 'off') return undefined;
  const cli = await ensureTemporalCli((line) => console.log(`[temporal] ${line}`));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-test-temporal-'));
  const server = await startOwnedDevServer({
    cli,
    dbFile: path.join(dir, 'temporal.db'),
    logFile: path.join(dir, 'server.log'),
    namespaces: TEST_NAMESPACES,
  });
  project.provide('temporalAddress', server.address);
  project.provide('temporalCli', cli);
  project.provide('namespaceClaims', dir);
  return () => server.stop();
}
