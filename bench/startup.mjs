// Startup cost, as ratios against bare `node -e 0` measured in the same run (machines are noisy,
// so runs are interleaved and the median is compared). Goal: --help ≤ 1.5×, offline dry run ≤ 2×.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'runbook.js');
const cwd = mkdtempSync(join(tmpdir(), 'runbook-bench-')); // no runbook.yaml here: the built-in example
const env = { ...process.env, RUNBOOK_CONFIG: '', NO_COLOR: '1', XDG_CONFIG_HOME: cwd };
delete env.RUNBOOK_CONFIG;

const cases = {
  'node -e 0': [process.execPath, ['-e', '0']],
  'runbook --help': [process.execPath, [bin, '--help']],
  'runbook app restart --dry-run=offline': [process.execPath, [bin, 'app', 'restart', '--dry-run=offline']],
  'runbook list': [process.execPath, [bin, 'list']],
};
const goals = { 'runbook --help': 1.5, 'runbook app restart --dry-run=offline': 2 };

function time([file, args]) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, args, { cwd, env, stdio: ['ignore', 'ignore', 'ignore'] });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const rounds = Number(process.env.BENCH_ROUNDS ?? 25);
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (const c of Object.values(cases)) time(c); // warm the file cache
for (let i = 0; i < rounds; i++) for (const [name, c] of Object.entries(cases)) samples[name].push(time(c));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const base = median(samples['node -e 0']);
console.log(`startup, median of ${rounds} interleaved runs`);
for (const [name, xs] of Object.entries(samples)) {
  const m = median(xs);
  const ratio = m / base;
  const goal = goals[name] ? `  (goal ≤ ${goals[name]}×: ${ratio <= goals[name] ? 'met' : 'MISSED'})` : '';
  console.log(`  ${name.padEnd(42)} ${m.toFixed(1).padStart(7)} ms  ${ratio.toFixed(2)}× bare node${goal}`);
}
