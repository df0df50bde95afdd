// How soon after the last pod turns ready does `runbook app scale` report the rollout complete?
// Measured side by side with `kubectl rollout status` against the same test API server, same run.
// Goal: within 1 s (runbook watches, it does not poll).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';


// Run with: node --import tsx bench/rollout.mjs (bench/run.mjs does)
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { startKubeApiServer } = await import(join(root, 'test/support/kube/index.ts'));

const dir = mkdtempSync(join(tmpdir(), 'runbook-bench-rollout-'));
const kube = await startKubeApiServer({ readyDelayMs: 400, namespace: 'production' });
const kubeconfig = join(dir, 'kubeconfig');
await kube.writeKubeconfig(kubeconfig, { context: 'bench', namespace: 'production' });
await kube.seedDeployment({ namespace: 'production', name: 'app', replicas: 2, labels: { app: 'api' } });
const config = join(dir, 'runbook.yaml');
writeFileSync(config, `environments:\n  bench:\n    kubernetes: { kubeconfig: ${kubeconfig}, namespace: production, deployment: app }\n    rollout: { timeout: 60s }\n    limits: { maxReplicas: 50 }\n`);
const journal = join(dir, 'journal');
const env = { ...process.env, RUNBOOK_CONFIG: config, RUNBOOK_JOURNAL_DIR: journal, KUBECONFIG: kubeconfig, NO_COLOR: '1' };

function run(file, args) {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: 'ignore' });
    child.on('exit', (code) => resolve({ code }));
  });
}

// Every moment the server's state turns from "rolling out" to "complete", sampled every 2 ms.
const transitions = [];
let wasComplete = kube.rolloutComplete('production', 'app');
const sampler = setInterval(() => {
  const now = kube.rolloutComplete('production', 'app');
  if (now && !wasComplete) transitions.push(Date.now());
  wasComplete = now;
}, 2);
const lastTransitionSince = (index, until) => transitions.slice(index).filter((t) => t <= until + 5).at(-1);

const ours = [];
const theirs = [];
let replicas = 2;
for (let i = 0; i < 5; i++) {
  // runbook: the journal's rollout step-end time vs the server's completion time.
  replicas = replicas === 2 ? 4 : 2;
  let mark = transitions.length;
  await run(process.execPath, [join(root, 'bin/runbook.js'), 'app', 'scale', '--replicas', String(replicas)]);
  const runs = readdirSync(join(journal, 'runs')).sort();
  const events = readFileSync(join(journal, 'runs', runs.at(-1)), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const end = new Date(events.find((e) => e.type === 'step-end' && e.step === 'rollout').t).getTime();
  ours.push(end - lastTransitionSince(mark, end));

  // kubectl: scale, then rollout status; its exit time vs the server's completion time.
  replicas = replicas === 2 ? 4 : 2;
  mark = transitions.length;
  await run('kubectl', ['scale', 'deployment/app', `--replicas=${replicas}`, '-n', 'production', '--cache-dir', join(dir, 'kcache')]);
  const k = await run('kubectl', ['rollout', 'status', 'deployment/app', '-n', 'production', '--timeout=60s', '--cache-dir', join(dir, 'kcache')]);
  const exitAt = Date.now();
  theirs.push(exitAt - lastTransitionSince(mark, exitAt));
  if (k.code !== 0) throw new Error('kubectl rollout status failed');
}
clearInterval(sampler);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log('rollout completion reported after the last pod became ready (median of 5)');
console.log(`  runbook (watch, journal time)        ${median(ours).toFixed(0).padStart(6)} ms   (goal ≤ 1000 ms: ${median(ours) <= 1000 ? 'met' : 'MISSED'})`);
console.log(`  kubectl rollout status (process exit) ${median(theirs).toFixed(0).padStart(6)} ms`);
await kube.close();
