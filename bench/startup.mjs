// Startup cost, as ratios against bare `node -e 0` measured in the same run (machines are noisy,
// so runs are interleaved in a rotating order and the median is compared).
// Goals: --help ≤ 1.3×, offline dry run ≤ 2×.
// RUNBOOK_BENCH_BASELINE=<another bin/runbook.js> adds that build's runs, side by side ("before").
// NODE_EXTRA_CA_CERTS, when set, is parsed by Node 20 at every start (a distribution bundle of ~150
// certificates costs ~40 ms), which inflates the baseline and flatters the ratios; so the runs are
// repeated without it and both sets of ratios are printed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baselineBin, median, runbookBin } from './lib/cluster.mjs';

const cwd = mkdtempSync(join(tmpdir(), 'runbook-bench-')); // no runbook.yaml here: the built-in example
const env = { ...process.env, NO_COLOR: '1', XDG_CONFIG_HOME: cwd, XDG_CACHE_HOME: join(cwd, 'cache') };
delete env.RUNBOOK_CONFIG;

const commands = {
  '--help': ['--help'],
  'app restart --dry-run=offline': ['app', 'restart', '--dry-run=offline'],
  list: ['list'],
};
const goals = { '--help': 1.3, 'app restart --dry-run=offline': 2 };

const cases = { 'node -e 0': { argv: ['-e', '0'] } };
for (const [name, args] of Object.entries(commands)) {
  cases[`runbook ${name}`] = { argv: [runbookBin, ...args], goal: goals[name] };
  // Its own cache directory: each build prunes the caches of the others.
  if (baselineBin) cases[`before: runbook ${name}`] = { argv: [baselineBin, ...args], goal: goals[name], cache: join(cwd, 'cache-before') };
}

function time({ argv, cache }, env) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, argv, { cwd, env: cache ? { ...env, XDG_CACHE_HOME: cache } : env, stdio: ['ignore', 'ignore', 'ignore'] });
  if (r.status !== 0) throw new Error(`node ${argv.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const rounds = Number(process.env.BENCH_ROUNDS ?? 25);
const names = Object.keys(cases);

function measure(title, env) {
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  for (const c of Object.values(cases)) time(c, env); // warm the file cache
  for (let i = 0; i < rounds; i++) {
    const order = [...names.slice(i % names.length), ...names.slice(0, i % names.length)];
    for (const name of order) samples[name].push(time(cases[name], env));
  }
  const base = median(samples['node -e 0']);
  console.log(`startup ${title}, median of ${rounds} interleaved runs`);
  for (const [name, xs] of Object.entries(samples)) {
    const m = median(xs);
    const ratio = m / base;
    const goal = cases[name].goal ? `  (goal ≤ ${cases[name].goal}×: ${ratio <= cases[name].goal ? 'met' : 'MISSED'})` : '';
    console.log(`  ${name.padEnd(50)} ${m.toFixed(1).padStart(7)} ms  ${ratio.toFixed(2)}× bare node${goal}`);
  }
}

if (baselineBin) console.log(`this build: ${runbookBin}\nbefore:     ${baselineBin}`);
try {
  if (env.NODE_EXTRA_CA_CERTS) {
    measure(`with NODE_EXTRA_CA_CERTS=${env.NODE_EXTRA_CA_CERTS} (as this machine starts node)`, env);
    const bare = { ...env };
    delete bare.NODE_EXTRA_CA_CERTS;
    measure('without NODE_EXTRA_CA_CERTS (the honest floor)', bare);
  } else {
    measure('(NODE_EXTRA_CA_CERTS not set)', env);
  }
} finally {
  rmSync(cwd, { recursive: true, force: true });
}
