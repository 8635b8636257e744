#!/usr/bin/env node
// `npm run bench [-- <name>…]`: runs the benchmarks of bench/ (bench/lib/run-bench.ts), through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../bench/lib/run-bench.ts');
process.exitCode = await main(process.argv.slice(2));
