// Read commands end to end against real servers, each beside the native CLI doing the same read:
//   runbook app scaling     vs  kubectl get hpa,pods      (a real API server, the same kubeconfig)
//   runbook db connections  vs  psql (its `equivalent`)   (a real PostgreSQL)
//   runbook cache stats     vs  redis-cli INFO everything (a real redis-server)
// Runs alternate in one process (the machine is shared and noisy); medians and the ratio
// runbook/native are printed. Target: ≤ 2× the native CLI.
// Where the native CLI is a C program that starts in a fraction of Node's own start (redis-cli
// takes ~8 ms, `node -e 0` ~30), no Node CLI can come within 2× of it; there the section also runs
// the physical floor for Node (bench/lib/redis-info-floor.cjs: Node, one socket, the same read, no
// library, config or journal) and prints runbook/floor: what runbook adds over the least any Node
// program does.
// The steady state is measured (the config's validation and the Kubernetes SDK's compiled code
// cached, as from the second run on); "(cold caches)" is a first run: after the config changed, a
// new build, or with an empty $XDG_CACHE_HOME.
// RUNBOOK_BENCH_BASELINE=<another bin/runbook.js> adds that build's runs, side by side ("before").
// RUNBOOK_BENCH_ONLY=kube,db,cache picks sections. BENCH_ROUNDS sets the number of runs (11).
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baselineBin, exitProblem, median, root, run, runbookBin, withBenchKube, writeBenchKubeconfig } from './lib/cluster.mjs';

// Run with: node --import tsx bench/read-commands.mjs (bench/run.mjs does); `npm run build` first.
const RUNS = Number(process.env.BENCH_ROUNDS ?? 11);
const GOAL = 2;
const only = process.env.RUNBOOK_BENCH_ONLY?.split(',');
const dir = mkdtempSync(join(tmpdir(), 'runbook-bench-read-'));
let fresh = 0;

/** The runbook runs of one command: this build (cached and cold config) and, if given, the baseline. */
function runbookCases(args) {
  const label = `runbook ${args.join(' ')}`;
  const cases = {
    [label]: { file: process.execPath, args: [runbookBin, ...args] },
    [`${label} (cold caches)`]: {
      file: process.execPath,
      args: [runbookBin, ...args],
      env: () => ({ XDG_CACHE_HOME: join(dir, `cold-${fresh++}`), RUNBOOK_JOURNAL_DIR: join(dir, 'journal-cold') }),
    },
  };
  // Journals apart, so the step time below is this build's; caches apart, as each build removes
  // the other builds' validated configs and the two would throw each other's out on every run.
  if (baselineBin)
    cases[`before: ${label}`] = {
      file: process.execPath,
      args: [baselineBin, ...args],
      env: () => ({ RUNBOOK_JOURNAL_DIR: join(dir, 'journal-before'), XDG_CACHE_HOME: join(dir, 'cache-before') }),
    };
  return { label, cases };
}

/**
 * Measures one section: warm-up runs (file cache, kubectl's discovery cache, the config cache) that
 * also check the output, then RUNS rounds in a rotating order.
 */
async function measure(title, { env, native, floor, runbook, check, stepOf }) {
  const cases = { ...runbook.cases, [native.label]: native, ...(floor ? { [floor.label]: floor } : {}) };
  const names = Object.keys(cases);
  const time = async (name) => {
    const c = cases[name];
    // Async spawn: the Kubernetes harness (lease renewals) lives in this process.
    const r = await run(c.file, c.args, { env: { ...env, ...c.env?.() }, cwd: dir, stdout: true });
    if (r.code !== 0) throw exitProblem(name, r);
    return r;
  };
  for (const name of names) check(name, (await time(name)).stdout);
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < RUNS; i++) {
    const order = [...names.slice(i % names.length), ...names.slice(0, i % names.length)];
    for (const name of order) samples[name].push((await time(name)).ms);
  }
  const theirs = median(samples[native.label]);
  console.log(`${title}; median of ${RUNS} runs, in rotating order`);
  for (const name of names) {
    const m = median(samples[name]);
    const ratio = name === native.label ? '' : `  ${(m / theirs).toFixed(2).padStart(5)}× ${native.label.split(' ')[0]}`;
    console.log(
      `  ${name.padEnd(58)} ${m.toFixed(0).padStart(6)} ms  (min ${Math.min(...samples[name])
        .toFixed(0)
        .padStart(4)}, max ${Math.max(...samples[name])
        .toFixed(0)
        .padStart(5)})${ratio}`,
    );
  }
  const step = stepOf?.();
  if (step !== undefined) console.log(`  ${'  of which its step (journal time)'.padEnd(58)} ${step.toFixed(0).padStart(6)} ms`);
  const ratio = median(samples[runbook.label]) / theirs;
  console.log(`  ratio runbook/${native.label.split(' ')[0]} ${ratio.toFixed(2).padStart(5)}×  (target ≤ ${GOAL}×: ${ratio <= GOAL ? 'met' : 'MISSED'})`);
  if (floor) {
    const nodeFloor = median(samples[floor.label]);
    console.log(
      `  ratio runbook/floor ${(median(samples[runbook.label]) / nodeFloor).toFixed(2).padStart(5)}×  (${native.label.split(' ')[0]} is ${(theirs / nodeFloor).toFixed(2)}× the floor)`,
    );
  }
  console.log('');
}

/** The median duration of a step over this build's last runs, from the journal. */
function journalStepMs(journalDir, step, runs) {
  const runsDir = join(journalDir, 'runs');
  // runs/YYYY/MM/DD/<id>.ndjson: sorted by path is sorted by run id.
  const ms = readdirSync(runsDir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ndjson'))
    .sort()
    .slice(-runs)
    .map(
      (f) =>
        readFileSync(join(runsDir, f), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l))
          .find((e) => e.type === 'step-end' && e.step === step)?.durationMs,
    )
    .filter((n) => typeof n === 'number');
  return ms.length ? median(ms) : undefined;
}

/** Environment of every run: its own config, journal and cache, nothing from the user's. */
function benchEnv(name, configText, extra = {}) {
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, configText);
  return {
    ...process.env,
    RUNBOOK_CONFIG: config,
    RUNBOOK_JOURNAL_DIR: join(dir, `journal-${name}`),
    XDG_CACHE_HOME: join(dir, `cache-${name}`),
    NO_COLOR: '1',
    ...extra,
  };
}

const sections = {
  async kube() {
    await withBenchKube(async (kube) => {
      const kubeconfig = writeBenchKubeconfig(kube, join(dir, 'kubeconfig'));
      await kube.seedDeployment({
        name: 'app',
        replicas: 3,
        labels: { app: 'api' },
        containers: [
          {
            name: 'api',
            image: 'registry.example.com/api:1.0.0',
            resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
          },
        ],
      });
      await kube.create({
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: { name: 'app', namespace: 'production' },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'app' },
          minReplicas: 3,
          maxReplicas: 10,
          metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
        },
      });
      const env = benchEnv(
        'kube',
        `environments:\n  bench:\n    kubernetes: { kubeconfig: ${kubeconfig}, context: bench, namespace: production, deployment: app, selector: app=api }\n`,
        { KUBECONFIG: kubeconfig },
      );
      await measure('app scaling against the real API server, same kubeconfig', {
        env,
        runbook: runbookCases(['app', 'scaling', '-e', 'bench']),
        native: {
          label: 'kubectl get hpa,pods -n production',
          file: 'kubectl',
          args: ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kcache'), 'get', 'hpa,pods', '-n', 'production'],
        },
        check: (name, out) => {
          if (!/app-[a-z0-9]+-[a-z0-9]+/.test(out) || !/\bapp\b/.test(out)) throw new Error(`${name}: the pods are missing from its output:\n${out}`);
        },
        stepOf: () => journalStepMs(env.RUNBOOK_JOURNAL_DIR, 'scaling', RUNS),
      });
    });
  },

  async db() {
    const { startPostgres } = await import(join(root, 'test/support/services/postgres.ts'));
    const pg = await startPostgres();
    try {
      const env = benchEnv('db', 'environments:\n  bench:\n    postgres: { url: { env: DATABASE_URL } }\n', { DATABASE_URL: pg.url });
      await measure('db connections against a real PostgreSQL', {
        env,
        runbook: runbookCases(['db', 'connections', '-e', 'bench']),
        // What the procedure names as its equivalent (`runbook explain db connections`).
        native: {
          label: 'psql -c <by state> -c "SHOW max_connections"',
          file: 'psql',
          args: [
            pg.url,
            '-X',
            '-c',
            "SELECT state, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY state",
            '-c',
            'SHOW max_connections',
          ],
        },
        check: (name, out) => {
          if (!/\d/.test(out)) throw new Error(`${name}: no numbers in its output:\n${out}`);
        },
        stepOf: () => journalStepMs(env.RUNBOOK_JOURNAL_DIR, 'connections', RUNS),
      });
    } finally {
      await pg.stop();
    }
  },

  async cache() {
    const { startRedis } = await import(join(root, 'test/support/services/redis.ts'));
    const redis = await startRedis();
    try {
      const env = benchEnv('cache', `environments:\n  bench:\n    redis: { url: ${redis.url} }\n`);
      await measure('cache stats against a real redis-server', {
        env,
        runbook: runbookCases(['cache', 'stats', '-e', 'bench']),
        native: { label: 'redis-cli INFO everything', file: 'redis-cli', args: ['-u', redis.url, 'INFO', 'everything'] },
        floor: {
          label: 'floor: node, one socket, INFO everything',
          file: process.execPath,
          args: [join(root, 'bench/lib/redis-info-floor.cjs'), String(redis.port), redis.host],
        },
        check: (name, out) => {
          if (!/keyspace|hit rate/i.test(out)) throw new Error(`${name}: no statistics in its output:\n${out}`);
        },
        stepOf: () => journalStepMs(env.RUNBOOK_JOURNAL_DIR, 'stats', RUNS),
      });
    } finally {
      await redis.stop();
    }
  },
};

let failed = false;
try {
  if (baselineBin) console.log(`this build: ${runbookBin}\nbefore:     ${baselineBin}\n`);
  for (const [name, section] of Object.entries(sections)) {
    if (only && !only.includes(name)) continue;
    try {
      await section();
    } catch (err) {
      // A missing server binary is reported, and the other sections still run.
      failed = true;
      console.log(`${name}: not measured: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
