// The child process that bundles the workflow code (workers/workers.ts `bundleWorkflows`): webpack
// and what it builds take ~150 MiB that a worker would otherwise keep for its whole life. Plain
// JavaScript, so it starts without the TypeScript loader; webpack compiles the workflows' TypeScript.
// Input: one JSON argument { workflowsPath, interceptorModules }; output: the bundle as JSON
// { code, sourceMap, sources } on stdout (`sources`: the files it was built from, for the cache).
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
// The bundler alone: not the SDK's native bridge and worker machinery, which bundling does not need.
import { bundleWorkflowCode } from '@temporalio/worker/lib/workflow/bundler.js';

const { workflowsPath, interceptorModules } = JSON.parse(process.argv[2]);
const quiet = { log() {}, info() {}, warn() {}, error() {}, debug() {}, trace() {} };
const bundle = await bundleWorkflowCode({
  workflowsPath,
  workflowInterceptorModules: interceptorModules,
  logger: quiet,
});
process.stdout.write(
  JSON.stringify({ code: lean(bundle.code), sourceMap: bundle.sourceMap, sources: sourceFiles(bundle.code) }),
);

/** The files the bundle was built from (its source map's sources that are files). */
function sourceFiles(code) {
  const at = code.lastIndexOf('//# sourceMappingURL=data:');
  const base64 = at < 0 ? -1 : code.indexOf('base64,', at);
  if (base64 < 0) return [];
  const map = JSON.parse(Buffer.from(code.slice(base64 + 'base64,'.length).trim(), 'base64').toString());
  return [...new Set(map.sources)].filter((f) => isAbsolute(f) && existsSync(f));
}

/**
 * The bundle as the worker keeps it (several copies: the Worker's, the workflow thread's), smaller:
 * - the inline source map without `sourcesContent` (every module's source, ~1 MiB, only debuggers
 *   read it): stack traces still name the file and line;
 * - characters past Latin-1 ("→" in the Web UI's summaries) written as \u escapes, which mean the
 *   same in strings, templates, regular expressions, identifiers and comments: V8 then stores the
 *   code one byte per character instead of two.
 */
function lean(code) {
  const at = code.lastIndexOf('//# sourceMappingURL=data:');
  const base64 = at < 0 ? -1 : code.indexOf('base64,', at);
  if (base64 < 0) return escapeWide(code); // the SDK reports a bundle without its map
  const map = JSON.parse(Buffer.from(code.slice(base64 + 'base64,'.length).trim(), 'base64').toString());
  delete map.sourcesContent;
  const comment = code.slice(at, base64 + 'base64,'.length);
  return `${escapeWide(code.slice(0, at))}${comment}${Buffer.from(JSON.stringify(map)).toString('base64')}\n`;
}

function escapeWide(text) {
  return text.replace(/[^\u0000-\u00ff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
