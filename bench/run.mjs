// `npm run bench`: runs each benchmark script in turn; each prints its own ratios.
// Benchmarks are measurements, never pass/fail timings.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
/** Benchmark scripts, in the order they run. Add yours here. */
const scripts = ['startup.mjs', 'rollout.mjs', 'read-commands.mjs', 'logs-rotate.mjs', 'cache-flush.mjs', 'security-evidence.mjs', 'journal.mjs'];

const only = process.argv.slice(2);
let failed = 0;
for (const script of scripts) {
  if (only.length && !only.some((o) => script.includes(o))) continue;
  process.stdout.write(`\n=== ${script} ===\n`);
  // tsx lets a benchmark use the TypeScript test servers (test/support) directly.
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, script)], { stdio: 'inherit' });
  if (r.status !== 0) failed += 1;
}
process.exitCode = failed ? 1 : 0;
