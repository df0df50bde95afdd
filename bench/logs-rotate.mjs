// logs rotate vs the seed's `find … -name '*.log' -mtime +7 -exec gzip {} \;`, side by side in one run:
// 200 log files of 5 MB (mtime 10 days ago), the built CLI against a copy of the same files.
// Checks that every file gunzips to exactly the original bytes, then prints the ratio.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';

const FILES = Number(process.env.BENCH_LOG_FILES ?? 200);
const SIZE = Number(process.env.BENCH_LOG_MB ?? 5) * 1024 * 1024;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'runbook-bench-logs-'));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const load0 = loadavg();
const source = join(work, 'source');
mkdirSync(source);

// Log-like text with enough variety to compress like real logs (about 5-8x).
let x = 0x9e3779b9;
const rnd = () => (x = (x * 1103515245 + 12345) >>> 0) >>> 8;
const paths = ['/api/users', '/api/orders', '/api/checkout', '/health', '/api/products', '/api/cart', '/login'];
const codes = [200, 200, 200, 200, 201, 204, 301, 400, 404, 500];
function logFile(n) {
  const parts = [];
  let len = 0;
  let t = 1_704_067_200_000 + n * 3_600_000;
  while (len < SIZE) {
    t += rnd() % 900;
    const line = `${new Date(t).toISOString()} ${['INFO', 'INFO', 'INFO', 'WARN', 'ERROR'][rnd() % 5]} req=${rnd().toString(16)} ip=10.${rnd() % 256}.${rnd() % 256}.${rnd() % 256} ${['GET', 'POST', 'PUT'][rnd() % 3]} ${paths[rnd() % paths.length]}/${rnd() % 100000} ${codes[rnd() % codes.length]} ${rnd() % 2000}ms ua="Mozilla/5.0 (X11; Linux x86_64) runbook-bench/${n % 7}"\n`;
    parts.push(line);
    len += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, SIZE);
}

process.stdout.write(`generating ${FILES} files of ${SIZE / 1048576} MB in ${work} …\n`);
const expected = new Map();
const old = (Date.now() - 10 * 86_400_000) / 1000;
for (let i = 0; i < FILES; i++) {
  const name = `app-${String(i).padStart(3, '0')}.log`;
  const data = logFile(i);
  expected.set(name, createHash('sha256').update(data).digest('hex'));
  writeFileSync(join(source, name), data);
  utimesSync(join(source, name), old, old);
}

/** A fresh copy of the source logs (mtimes preserved), flushed to disk so neither side pays for the other's writes. */
function fresh(name) {
  const d = join(work, name);
  rmSync(d, { recursive: true, force: true });
  const r = spawnSync('cp', ['-a', source, d]);
  if (r.status !== 0) throw new Error(`cp failed: ${r.stderr}`);
  spawnSync('sync');
  return d;
}

const config = join(work, 'runbook.yaml');
writeFileSync(config, 'environments:\n  bench:\n    logs: {}\n');

function timed(label, file, args, env = {}) {
  const t0 = performance.now();
  const r = spawnSync(file, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${label} failed (exit ${r.status}): ${String(r.stderr).slice(-500)}`);
  return ms;
}

const runSeed = (d) => timed('find -exec gzip', 'find', [d, '-name', '*.log', '-mtime', '+7', '-exec', 'gzip', '{}', ';']);
const runOurs = (d) =>
  timed(
    'runbook logs rotate',
    process.execPath,
    [join(root, 'bin/runbook.js'), 'logs', 'rotate', '--dir', d, '--compress-after', '7d', '--delete-after', '365d', '--yes', '-q'],
    {
      RUNBOOK_CONFIG: config,
      RUNBOOK_JOURNAL_DIR: join(work, 'journal'),
      NO_COLOR: '1',
    },
  );

// Alternate the order each round: the machine is shared and noisy.
let seedMs = 0;
let oursMs = 0;
let ours;
let seed;
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? ['seed', 'ours'] : ['ours', 'seed'];
  const times = {};
  for (const who of order) {
    const d = fresh(who);
    times[who] = who === 'seed' ? runSeed(d) : runOurs(d);
    if (who === 'seed') seed = d;
    else ours = d;
  }
  seedMs += times.seed;
  oursMs += times.ours;
  process.stdout.write(
    `round ${round + 1}: seed ${(times.seed / 1000).toFixed(2)} s, ours ${(times.ours / 1000).toFixed(2)} s, ratio ${(times.seed / times.ours).toFixed(2)}x\n`,
  );
}

async function gunzipHash(file) {
  const h = createHash('sha256');
  // eslint-disable-next-line require-yield -- a pipeline() sink: it consumes the stream
  await pipeline(createReadStream(file), createGunzip(), async function* (src) {
    for await (const c of src) h.update(c);
  });
  return h.digest('hex');
}
let mismatches = 0;
for (const d of [ours, seed]) {
  const names = readdirSync(d);
  if (names.length !== FILES || names.some((n) => !n.endsWith('.log.gz'))) {
    process.stdout.write(
      `UNEXPECTED files in ${d}: ${names
        .filter((n) => !n.endsWith('.log.gz'))
        .slice(0, 5)
        .join(', ')} (${names.length} total)\n`,
    );
    mismatches++;
  }
  for (const n of names.filter((f) => f.endsWith('.log.gz'))) if ((await gunzipHash(join(d, n))) !== expected.get(n.replace(/\.gz$/, ''))) mismatches++;
}
rmSync(work, { recursive: true, force: true });

const mbTotal = (ROUNDS * FILES * SIZE) / 1048576;
process.stdout.write(`cores: ${availableParallelism()}, load average at start: ${load0.map((l) => l.toFixed(1)).join(' ')}\n`);
process.stdout.write(`total over ${ROUNDS} round(s):\n`);
process.stdout.write(`seed  find -exec gzip   ${(seedMs / 1000).toFixed(2)} s  (${(mbTotal / (seedMs / 1000)).toFixed(0)} MB/s)\n`);
process.stdout.write(`ours  runbook logs rotate ${(oursMs / 1000).toFixed(2)} s  (${(mbTotal / (oursMs / 1000)).toFixed(0)} MB/s)\n`);
process.stdout.write(
  `ratio: ${(seedMs / oursMs).toFixed(2)}x faster (goal ≥ 1.5x); bytes after gunzip identical: ${mismatches === 0 ? 'yes' : `NO (${mismatches} mismatches)`}\n`,
);
process.exitCode = mismatches === 0 ? 0 : 1;
