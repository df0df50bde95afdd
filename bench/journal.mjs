// The journal's cost grows with what is shown, not what is stored: `runbook history` (shows 20) and
// `runbook report new --since 1h` with 10 runs in the journal and with 20,000 (90 days of runs, the
// same 10 in the last hour), side by side in one run, rotating order, medians and the ratio
// 20,000/10 printed. Target: ≤ 1.2×. The 10-run journal is the baseline (Node's startup and the CLI's
// own load are in both).
// The run files are written where this checkout's runFile() puts them (the layout of a journal the
// current build writes), plus a 20,000-run journal of old flat files (runs/<id>.ndjson, written
// before the day layout) for information.
// RUNBOOK_BENCH_BASELINE=<another bin/runbook.js> adds that build's runs ("before"), on the flat
// journals (the only layout an older build reads). BENCH_ROUNDS sets the number of runs (11);
// RUNBOOK_BENCH_ONLY=history or =report picks one command.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { baselineBin, exitProblem, median, root, runbookBin } from './lib/cluster.mjs';

const { runFile } = await import(join(root, 'src/core/journal.ts'));

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 11);
const GOAL = 1.2;
const BIG = 20_000;
const dir = mkdtempSync(join(tmpdir(), 'runbook-bench-journal-'));
const env = { ...process.env, NO_COLOR: '1', XDG_CONFIG_HOME: dir, XDG_CACHE_HOME: join(dir, 'cache') };
delete env.RUNBOOK_CONFIG;
delete env.RUNBOOK_JOURNAL_DIR;

const procedures = [
  ['app restart', 'write', { deployment: 'api' }],
  ['db connections', 'read', { database: 'orders' }],
  ['cache flush', 'destructive', { pattern: 'session:*' }],
  ['app scale', 'write', { deployment: 'worker', replicas: 4 }],
  ['logs search', 'read', { query: 'error' }],
];

const stamp = (ms) =>
  new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '');

/** A run file as the runner writes one: start, plan gate, three steps, end (about 1 KB). */
function runText(id, startMs, i) {
  const [procedure, risk, params] = procedures[i % procedures.length];
  const t = (ms) => new Date(startMs + ms).toISOString();
  const lines = [
    {
      t: t(0),
      type: 'run-start',
      runId: id,
      procedure,
      environment: i % 3 ? 'production' : 'staging',
      params,
      operator: 'ana@example.com',
      dryRun: 'off',
      config: '/etc/runbook.yaml',
    },
    { t: t(40), type: 'gate', step: 'plan', kind: risk === 'read' ? 'none' : 'confirm', decision: 'approved', by: 'flags' },
  ];
  for (const [n, step] of ['check', 'change', 'verify'].entries()) {
    lines.push({ t: t(100 + n * 300), type: 'step-start', step, title: `${step} the ${procedure.split(' ')[0]}`, risk: step === 'change' ? risk : 'read' });
    lines.push({
      t: t(300 + n * 300),
      type: 'step-end',
      step,
      status: 'succeeded',
      durationMs: 200,
      data: { target: `${procedure}#${i}`, ready: true },
      changes: step === 'change' && risk !== 'read' ? [{ action: 'update', target: `deployment/${params.deployment ?? 'x'}`, before: 3, after: 4 }] : [],
    });
  }
  lines.push({ t: t(1200), type: 'run-end', status: 'succeeded', exitCode: 0, durationMs: 1200 });
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}

/**
 * A journal of `count` runs: the newest 10 in the last 10 minutes (one a minute, so that they are
 * still within --since 1h when the report is measured, after minutes of history rounds), the rest
 * spread evenly over the 90 days before the last hour. `flat`: runs/<id>.ndjson, as builds before the day layout wrote.
 */
function makeJournal(name, count, flat) {
  const journal = join(dir, name);
  const now = Date.now();
  const made = new Set();
  for (let i = 0; i < count; i++) {
    const startMs = i < 10 ? now - 10 * 60_000 + i * 60_000 : now - 3_600_000 - Math.floor(((i - 10) * 90 * 86_400_000) / Math.max(1, count - 10));
    let id;
    do
      id = `${stamp(startMs)}-${Math.floor(Math.random() * 0x10000)
        .toString(16)
        .padStart(4, '0')}`;
    while (made.has(id));
    made.add(id);
    const file = flat ? join(journal, 'runs', `${id}.ndjson`) : runFile(journal, id);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, runText(id, startMs, i));
  }
  return { dir: journal, files: new Set(readdirSync(join(journal, 'runs'), { recursive: true })) };
}

/** What a measured command added to the journal (report new journals its own run): removed, so every round reads the same. */
function tidy(journal) {
  for (const f of readdirSync(join(journal.dir, 'runs'), { recursive: true }))
    if (!journal.files.has(f) && f.endsWith('.ndjson')) unlinkSync(join(journal.dir, 'runs', f));
}

const journals = {
  10: makeJournal('j10', 10, false),
  [BIG]: makeJournal('j20k', BIG, false),
  'flat 10': makeJournal('flat10', 10, true),
  [`flat ${BIG}`]: makeJournal('flat20k', BIG, true),
};

const commands = {
  history: { args: ['history'], check: (out) => out.split('\n').filter((l) => /^\d{8}T\d{6}-/.test(l)).length },
  'report new --since 1h': {
    // --all-runs: the read-only runs too (a window keeps only those that changed something), so it shows all 10.
    args: ['report', 'new', '--title', 'bench', '--severity', 'P3', '--since', '1h', '--all-runs'],
    check: (out) => out.split('\n').filter((l) => l.startsWith('- `runbook ')).length,
  },
};

const only = process.env.RUNBOOK_BENCH_ONLY;
for (const cmd of Object.keys(commands)) if (only && !cmd.startsWith(only)) delete commands[cmd];
const cases = {};
for (const [cmd, { args, check }] of Object.entries(commands)) {
  const add = (label, bin, journal, expect) => (cases[label] = { cmd, bin, args, check, journal, expect });
  add(`${cmd} @ 10 runs`, runbookBin, journals[10], 10);
  add(`${cmd} @ ${BIG} runs`, runbookBin, journals[BIG], cmd === 'history' ? 20 : 10);
  add(`${cmd} @ ${BIG} runs (old flat files)`, runbookBin, journals[`flat ${BIG}`], cmd === 'history' ? 20 : 10);
  if (baselineBin) {
    add(`before: ${cmd} @ 10 runs (flat)`, baselineBin, journals['flat 10'], 10);
    add(`before: ${cmd} @ ${BIG} runs (flat)`, baselineBin, journals[`flat ${BIG}`], cmd === 'history' ? 20 : 10);
  }
}

/** The process's own CPU time (all its threads), written to fd 3 as it exits: what a loaded machine does not inflate. */
const cpuProbe =
  'data:text/javascript,' +
  encodeURIComponent(
    "import { writeSync } from 'node:fs'; process.on('exit', () => { const u = process.cpuUsage(); writeSync(3, String((u.user + u.system) / 1000)); });",
  );

/** One run of a case: wall time (ms), CPU time (ms), stdout. */
function time(name) {
  const c = cases[name];
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', cpuProbe, c.bin, ...c.args], {
      env: { ...env, RUNBOOK_JOURNAL_DIR: c.journal.dir },
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let cpu = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.stdio[3].setEncoding('utf8').on('data', (d) => (cpu += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      tidy(c.journal);
      if (code !== 0) reject(exitProblem(name, { code, stderr }));
      else resolve({ ms, cpu: Number(cpu), stdout });
    });
  });
}

try {
  const names = Object.keys(cases);
  // Warm-up (file cache, any index or cache a first read builds), checking each shows what it should.
  for (const name of names) {
    const got = cases[name].check((await time(name)).stdout);
    if (got !== cases[name].expect) throw new Error(`${name}: shows ${got} runs, expected ${cases[name].expect}`);
  }
  const samples = Object.fromEntries(names.map((k) => [k, { ms: [], cpu: [] }]));
  for (let i = 0; i < ROUNDS; i++) {
    const order = [...names.slice(i % names.length), ...names.slice(0, i % names.length)];
    for (const name of order) {
      const r = await time(name);
      samples[name].ms.push(r.ms);
      samples[name].cpu.push(r.cpu);
    }
  }
  if (baselineBin) console.log(`this build: ${runbookBin}\nbefore:     ${baselineBin}`);
  console.log(`journal reads, median of ${ROUNDS} runs in rotating order (wall time; and the process's CPU time, which load does not inflate)`);
  const m = (name, what = 'ms') => median(samples[name][what]);
  for (const name of names)
    console.log(
      `  ${name.padEnd(58)} ${m(name).toFixed(0).padStart(6)} ms  (min ${Math.min(...samples[name].ms)
        .toFixed(0)
        .padStart(4)})  cpu ${m(name, 'cpu').toFixed(0).padStart(5)} ms`,
    );
  const ratio = (a, b) => `${(m(a) / m(b)).toFixed(2).padStart(5)}× (cpu ${(m(a, 'cpu') / m(b, 'cpu')).toFixed(2)}×)`;
  for (const cmd of Object.keys(commands)) {
    const r = m(`${cmd} @ ${BIG} runs`) / m(`${cmd} @ 10 runs`);
    console.log(`  ratio ${cmd} ${BIG}/10 runs ${ratio(`${cmd} @ ${BIG} runs`, `${cmd} @ 10 runs`)}  (target ≤ ${GOAL}×: ${r <= GOAL ? 'met' : 'MISSED'})`);
    console.log(`  ratio ${cmd} ${BIG} old flat files/10 runs ${ratio(`${cmd} @ ${BIG} runs (old flat files)`, `${cmd} @ 10 runs`)}  (for information)`);
    if (baselineBin) console.log(`  before: ratio ${cmd} ${BIG}/10 runs ${ratio(`before: ${cmd} @ ${BIG} runs (flat)`, `before: ${cmd} @ 10 runs (flat)`)}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
