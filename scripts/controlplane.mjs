// `npm run controlplane`: builds the test control plane (Go) into its cache unless this version of
// its sources is already built there, and prints the binary's path and how long it took.
// Run with: node --import tsx scripts/controlplane.mjs
import { ensureControlPlaneBinary } from '../test/support/cluster/build.ts';

const started = Date.now();
const bin = ensureControlPlaneBinary((line) => process.stderr.write(`${line}\n`));
process.stdout.write(`${bin}\n`);
process.stderr.write(`control plane ready to run (${Math.round((Date.now() - started) / 1000)} s)\n`);
