#!/usr/bin/env node
// `npm run build`: the `xcpb` command in one JavaScript file, dist/xcpb.mjs, what a deployed worker
// runs (the Dockerfile, deploy/systemd): no TypeScript loader at run time, whose thread and caches
// cost ~25 MiB of a worker's RSS. Dependencies stay in node_modules (the SDK's native bridge among
// them); the workflow code is still bundled by the worker itself (workers/workers.ts). Paths the
// code resolves from its own folder (`../workflows`, `../deploy`, `../package.json`) hold, since
// dist/ is one folder below the root like the sources' folders.
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');

/** Builds the command into `outfile` (default dist/xcpb.mjs). */
export async function buildCommand(outfile = path.join(root, 'dist/xcpb.mjs')) {
  await build({
    entryPoints: [path.join(root, 'cli/bin.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
  });
  return outfile;
}

if (process.argv[1] === import.meta.filename) {
  const out = await buildCommand(process.argv[2] && path.resolve(process.argv[2]));
  process.stdout.write(`built ${path.relative(process.cwd(), out)}\n`);
}
