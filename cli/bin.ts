// The `xcpb` command's entry: run from the TypeScript sources by bin/xcpb.mjs (through tsx), or
// built into dist/xcpb.mjs by `npm run build` (what a deployed worker runs: no TypeScript loader,
// whose thread and caches cost the worker ~35 MiB of RSS).
import { main } from './main';

process.exitCode = await main(process.argv.slice(2));
