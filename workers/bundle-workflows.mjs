// The child process that bundles the workflow code (workers/workers.ts `bundleWorkflows`): webpack
// and what it builds take ~150 MiB that a worker would otherwise keep for its whole life. Plain
// JavaScript, so it starts without the TypeScript loader; webpack compiles the workflows' TypeScript.
// Input: one JSON argument { workflowsPath, interceptorModules }; output: the bundle as JSON
// { code, sourceMap } on stdout.
import { bundleWorkflowCode } from '@temporalio/worker';

const { workflowsPath, interceptorModules } = JSON.parse(process.argv[2]);
const quiet = { log() {}, info() {}, warn() {}, error() {}, debug() {}, trace() {} };
const bundle = await bundleWorkflowCode({
  workflowsPath,
  workflowInterceptorModules: interceptorModules,
  logger: quiet,
});
process.stdout.write(JSON.stringify({ code: bundle.code, sourceMap: bundle.sourceMap }));
