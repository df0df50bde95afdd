// A read command end to end: `runbook app scaling -e bench` vs `kubectl get hpa,pods -n production`,
// against the same real API server (the test control plane) with the same kubeconfig, alternating
// runs in one process. Prints the medians and the ratio runbook/kubectl. Target: ≤ 2× kubectl.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitProblem, median, run, runbookBin, withBenchKube, writeBenchKubeconfig } from './lib/cluster.mjs';

// Run with: node --import tsx bench/read-commands.mjs (bench/run.mjs does); `npm run build` first.
const RUNS = Number(process.env.BENCH_ROUNDS ?? 11);
const GOAL = 2;
const dir = mkdtempSync(join(tmpdir(), 'runbook-bench-read-'));

try {
  await withBenchKube(async (kube) => {
    const kubeconfig = writeBenchKubeconfig(kube, join(dir, 'kubeconfig'));
    await kube.seedDeployment({
      name: 'app',
      replicas: 3,
      labels: { app: 'api' },
      containers: [{ name: 'api', image: 'registry.example.com/api:1.0.0', resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } } }],
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
    const config = join(dir, 'runbook.yaml');
    writeFileSync(config, `environments:\n  bench:\n    kubernetes: { kubeconfig: ${kubeconfig}, context: bench, namespace: production, deployment: app, selector: app=api }\n`);
    const env = { ...process.env, RUNBOOK_CONFIG: config, RUNBOOK_JOURNAL_DIR: join(dir, 'journal'), KUBECONFIG: kubeconfig, NO_COLOR: '1' };

    const cases = {
      'runbook app scaling -e bench': [process.execPath, [runbookBin, 'app', 'scaling', '-e', 'bench']],
      'kubectl get hpa,pods -n production': ['kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kcache'), 'get', 'hpa,pods', '-n', 'production']],
    };
    const time = async (name) => {
      const [file, args] = cases[name];
      // Async spawn: the harness (lease renewals) lives in this process.
      const r = await run(file, args, { env, cwd: dir, stdout: true });
      if (r.code !== 0) throw exitProblem(name, r);
      return r;
    };

    // Warm-up (file cache, kubectl's discovery cache), and a check that both show the seeded objects.
    for (const name of Object.keys(cases)) {
      const r = await time(name);
      if (!/app-[a-z0-9]+-[a-z0-9]+/.test(r.stdout) || !/\bapp\b/.test(r.stdout)) throw new Error(`${name}: the pods are missing from its output:\n${r.stdout}`);
    }

    const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
    const names = Object.keys(cases);
    for (let i = 0; i < RUNS; i++) {
      // Alternate which goes first: the machine is shared and noisy.
      for (const name of i % 2 === 0 ? names : [...names].reverse()) samples[name].push((await time(name)).ms);
    }

    // Where runbook's time goes: the journal's duration of its one step (the API calls), per run.
    const runsDir = join(dir, 'journal', 'runs');
    const stepMs = readdirSync(runsDir)
      .sort()
      .slice(-RUNS)
      .map((f) => readFileSync(join(runsDir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.type === 'step-end' && e.step === 'scaling')?.durationMs)
      .filter((ms) => typeof ms === 'number');

    const ours = median(samples[names[0]]);
    const theirs = median(samples[names[1]]);
    const ratio = ours / theirs;
    console.log(`read commands against the real API server, same kubeconfig; median of ${RUNS} alternating runs`);
    for (const name of names) console.log(`  ${name.padEnd(36)} ${median(samples[name]).toFixed(0).padStart(6)} ms   (min ${Math.min(...samples[name]).toFixed(0)}, max ${Math.max(...samples[name]).toFixed(0)})`);
    if (stepMs.length) console.log(`  ${'  of which its step (journal time)'.padEnd(36)} ${median(stepMs).toFixed(0).padStart(6)} ms`);
    console.log(`  ratio runbook/kubectl                ${ratio.toFixed(2).padStart(6)}×     (target ≤ ${GOAL}×: ${ratio <= GOAL ? 'met' : 'MISSED'})`);
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
