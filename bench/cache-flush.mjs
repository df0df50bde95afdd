// `cache flush --pattern` against the seed's pipeline and the server's own floor, side by side in
// one run (interleaved rounds, medians: machines here are noisy). Whole-process wall time each:
//   ours  — node bin/runbook.js cache flush --pattern 'user:*' --yes (a bounded sample → one pass
//           that deletes and counts → verify)
//   seed  — sh -c "redis-cli --scan --pattern 'user:*' | xargs redis-cli DEL"
//   floor — one server-side Lua loop of SCAN + UNLINK (what the server itself needs; blocks it)
// Dataset: 1,000,000 keys, 500,000 matching. Also: the longest single server call of each (SLOWLOG;
// wall time, so on a busy machine a descheduled call counts its wait), and our peak RSS with
// 1,000,000 matching keys against 100,000.
// Goals (issue 11): ≥ 3× faster than the seed, ≤ 1.2× the floor, server calls of a few ms, RSS ratio ≤ 1.2.
// RUNBOOK_BENCH_BIN=/path/to/bin/runbook.js measures another build (e.g. one made elsewhere from src).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The built CLI (`npm run build` first); RUNBOOK_BENCH_BIN measures another build instead (as bench/lib/cluster.mjs). */
const bin = process.env.RUNBOOK_BENCH_BIN ?? join(root, 'bin', 'runbook.js');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOTAL = Number(process.env.BENCH_KEYS ?? 1_000_000);
const MATCHING = TOTAL / 2;

function which(name) {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`${name} not found: apt-get install -y redis-server`);
    process.exit(1);
  }
  return r.stdout.trim();
}
const redisServer = which('redis-server');
const redisCli = which('redis-cli');

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });

const dir = mkdtempSync(join(tmpdir(), 'runbook-bench-cache-'));
const port = await freePort();
const server = spawn(
  redisServer,
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', join(dir, 'redis.log')],
  { stdio: 'ignore' },
);
const cleanup = () => {
  if (server.exitCode === null) server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function cli(...args) {
  const r = spawnSync(redisCli, ['-p', String(port), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`redis-cli ${args[0]}: ${r.stderr}`);
  return r.stdout.trim();
}

for (let i = 0; ; i++) {
  try {
    await new Promise((res, rej) => {
      const s = connect(port, '127.0.0.1', () => {
        s.end();
        res();
      });
      s.on('error', rej);
    });
    if (cli('PING') === 'PONG') break;
  } catch {
    if (i > 100) throw new Error('redis-server did not start');
  }
  await new Promise((r) => setTimeout(r, 50));
}
// Log only calls over 0.5 ms (cheap), and keep enough entries for every batch of a run.
cli('CONFIG', 'SET', 'slowlog-log-slower-than', '500');
cli('CONFIG', 'SET', 'slowlog-max-len', '100000');

const LOADER = `for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do redis.call('SET', ARGV[1] .. i, 'v') end return 1`;
function load(matching, other) {
  cli('FLUSHALL');
  const chunk = 100_000;
  for (const [prefix, n] of [
    ['user:', matching],
    ['other:', other],
  ]) {
    for (let s = 1; s <= n; s += chunk) cli('EVAL', LOADER, '0', prefix, String(s), String(Math.min(n, s + chunk - 1)));
  }
  const size = Number(cli('DBSIZE'));
  if (size !== matching + other) throw new Error(`loaded ${size} keys, expected ${matching + other}`);
}

const FLOOR = `local c, n = '0', 0
repeat
  local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000)
  c = r[1]
  if #r[2] > 0 then n = n + redis.call('UNLINK', unpack(r[2])) end
until c == '0'
return n`;

const cfgDir = mkdtempSync(join(dir, 'cfg-'));
const configPath = join(cfgDir, 'runbook.yaml');
writeFileSync(configPath, `default: bench\nenvironments:\n  bench:\n    redis: { url: "redis://127.0.0.1:${port}" }\n`);
const rssFile = join(dir, 'maxrss');
const preload = join(dir, 'maxrss.mjs');
writeFileSync(
  preload,
  `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(rssFile)}, String(process.resourceUsage().maxRSS)));\n`,
);
const childEnv = { ...process.env, NO_COLOR: '1', RUNBOOK_JOURNAL_DIR: join(dir, 'journal'), XDG_STATE_HOME: join(dir, 'state') };

const methods = {
  ours: [process.execPath, [bin, '-c', configPath, 'cache', 'flush', '--pattern', 'user:*', '--yes', '--quiet', '--json']],
  seed: ['sh', ['-c', `${redisCli} -p ${port} --scan --pattern 'user:*' | xargs ${redisCli} -p ${port} DEL > /dev/null`]],
  floor: [redisCli, ['-p', String(port), 'EVAL', FLOOR, '0', 'user:*']],
};

/** The commands each method sends itself (commandstats also counts the ones scripts run inside). */
const topLevel = { ours: ['evalsha', 'eval'], seed: ['scan', 'del'], floor: ['eval'] };

function slowest(name) {
  const raw = spawnSync(redisCli, ['-p', String(port), '--json', 'SLOWLOG', 'GET', '100000'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  let entries = [];
  try {
    entries = JSON.parse(raw.stdout);
  } catch {
    /* redis-cli without --json: fall back to no figure */
  }
  let max = 0;
  let over5ms = 0;
  for (const e of entries) {
    const cmd = String(e[3]?.[0] ?? '').toUpperCase();
    if (cmd === 'CONFIG' || cmd === 'SLOWLOG' || cmd === 'INFO') continue;
    max = Math.max(max, Number(e[2]));
    if (Number(e[2]) > 5000) over5ms++;
  }
  const stats = cli('INFO', 'commandstats');
  let calls = 0;
  for (const m of stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) if (topLevel[name].includes(m[1])) calls += Number(m[2]);
  return { maxUs: max, over5ms, calls };
}

function runTimed(name, withRss = false) {
  const [file, args] = methods[name];
  const realArgs = withRss && name === 'ours' ? ['--import', preload, ...args] : args;
  cli('SLOWLOG', 'RESET');
  cli('CONFIG', 'RESETSTAT');
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, realArgs, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr}`);
  const lat = slowest(name);
  const left = Number(
    cli(
      'EVAL',
      `local c, n = '0', 0 repeat local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000) c = r[1] n = n + #r[2] until c == '0' return n`,
      '0',
      'user:*',
    ),
  );
  if (left !== 0) throw new Error(`${name} left ${left} matching keys`);
  const steps = name === 'ours' ? Object.fromEntries(JSON.parse(r.stdout).steps.map((s) => [s.id, s.durationMs])) : undefined;
  return { ms, ...lat, steps, rss: withRss ? Number(readFileSync(rssFile, 'utf8')) : undefined };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms) => `${(ms / 1000).toFixed(2)} s`;
const t0 = performance.now();

console.log(
  `cache flush --pattern 'user:*': ${TOTAL.toLocaleString('en-US')} keys, ${MATCHING.toLocaleString('en-US')} matching; ${ROUNDS} interleaved rounds, medians`,
);
const samples = { ours: [], seed: [], floor: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const name of Object.keys(methods)) {
    load(MATCHING, TOTAL - MATCHING);
    samples[name].push(runTimed(name));
  }
}
const m = Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, median(xs.map((x) => x.ms))]));
const maxCall = Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, Math.max(...xs.map((x) => x.maxUs))]));
for (const name of Object.keys(methods)) {
  const all = samples[name].map((x) => fmt(x.ms)).join(', ');
  const calls = median(samples[name].map((x) => x.calls));
  const over = Math.max(...samples[name].map((x) => x.over5ms));
  console.log(
    `  ${name.padEnd(6)} ${fmt(m[name]).padStart(8)}   (runs: ${all})   ~${calls} server calls, longest ${(maxCall[name] / 1000).toFixed(1)} ms, ${over} over 5 ms`,
  );
}
// Each round runs the three back to back, so a round's ratios share its load: their medians are steadier.
const perRound = (f) => median(samples.ours.map((_, i) => f(i)));
console.log(
  `  per-round ratios (medians): seed/ours ${perRound((i) => samples.seed[i].ms / samples.ours[i].ms).toFixed(2)}×, ours/floor ${perRound((i) => samples.ours[i].ms / samples.floor[i].ms).toFixed(2)}×`,
);
const part = (id) => median(samples.ours.map((x) => x.steps[id]));
console.log(
  `  ours, by step (medians): count (a sample) ${fmt(part('count'))}, delete ${fmt(part('unlink'))}, verify ${fmt(part('verify'))}; the rest is process start, connect and output`,
);
console.log(`  our delete step alone: ${(part('unlink') / m.floor).toFixed(2)}× the floor`);
const speedup = m.seed / m.ours;
const vsFloor = m.ours / m.floor;
console.log(`  ours vs seed:  ${speedup.toFixed(2)}× faster   (goal ≥ 3×: ${speedup >= 3 ? 'met' : 'MISSED'})`);
console.log(`  ours vs floor: ${vsFloor.toFixed(2)}× the floor (goal ≤ 1.2×: ${vsFloor <= 1.2 ? 'met' : 'MISSED'})`);
console.log(
  `  our longest server call: ${(maxCall.ours / 1000).toFixed(1)} ms (goal: a few ms: ${maxCall.ours <= 5000 ? 'met' : 'MISSED'}); the floor blocks the server ${(maxCall.floor / 1000).toFixed(0)} ms in one call`,
);

// Peak memory: the same flush with 10× the matching keys must not need more memory.
const rss = {};
for (const n of [100_000, 1_000_000]) {
  load(n, 0);
  rss[n] = runTimed('ours', true).rss;
}
const rssRatio = rss[1_000_000] / rss[100_000];
console.log(
  `  peak RSS: ${(rss[100_000] / 1024).toFixed(1)} MiB with 100,000 matching keys, ${(rss[1_000_000] / 1024).toFixed(1)} MiB with 1,000,000: ${rssRatio.toFixed(2)}× (goal ≤ 1.2×: ${rssRatio <= 1.2 ? 'met' : 'MISSED'})`,
);
console.log(`  (bench took ${fmt(performance.now() - t0)})`);
cleanup();
process.exit(0);
