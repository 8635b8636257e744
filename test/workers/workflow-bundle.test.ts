// The worker's workflow bundle (workers/workers.ts bundleWorkflows): built in a child process, kept
// in the state folder with the hash of every file it was built from, reused only while they match.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bundleWorkflows } from '../../workers/workers';

let dir: string;
const saved = process.env.XCPB_STATE_DIR;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-bundle-'));
  process.env.XCPB_STATE_DIR = dir;
});
afterAll(async () => {
  if (saved === undefined) delete process.env.XCPB_STATE_DIR;
  else process.env.XCPB_STATE_DIR = saved;
  await rm(dir, { recursive: true, force: true });
});

interface Entry {
  code: string;
  sources: { file: string; sha256: string }[];
}
const entries = async () => {
  const folder = path.join(dir, 'workflow-bundles');
  const names = (await readdir(folder)).filter((n) => n.endsWith('.json'));
  return names.map((n) => path.join(folder, n));
};

it('is built once, lean, and reused while the files it was built from are unchanged', {
  timeout: 120_000,
}, async () => {
  const first = await bundleWorkflows();
  // Lean: no embedded sources, one byte per character (summaries' "→" as escapes).
  expect(first.code).toContain('backupVm');
  expect(first.code).not.toMatch(/[^\u0000-\u00ff]/);
  const [file] = await entries();
  const entry = JSON.parse(await readFile(file, 'utf8')) as Entry;
  expect(entry.sources.map((s) => s.file)).toContain(path.resolve('workflows/backup-vm.ts'));

  // A changed source (here: its recorded hash no longer matches) means a new bundle, not the old one.
  const stale = { ...entry, code: `${entry.code}\n// stale`, sources: entry.sources.map((s) => ({ ...s })) };
  stale.sources.find((s) => s.file.endsWith('backup-vm.ts'))!.sha256 = '0'.repeat(64);
  await writeFile(file, JSON.stringify(stale));
  expect((await bundleWorkflows()).code).toBe(first.code);

  // Unchanged sources: the cached bundle is what comes back (marked, to tell it from a new one).
  const marked = JSON.parse(await readFile(file, 'utf8')) as Entry;
  await writeFile(file, JSON.stringify({ ...marked, code: `${marked.code}\n// cached` }));
  expect((await bundleWorkflows()).code).toBe(`${first.code}\n// cached`);
  expect(await entries()).toHaveLength(1);
});
