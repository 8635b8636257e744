#!/usr/bin/env node
// Entry point of the `xcpb` command: the sources are TypeScript, run through tsx's loader.
// (A deployed worker runs dist/xcpb.mjs, the same command built by `npm run build`.)
import { register } from 'tsx/esm/api';

register();
await import('../cli/bin.ts');
