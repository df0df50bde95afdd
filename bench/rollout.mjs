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
    const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.on('exit', (code) => resolve({ code, at: performance.timeOrigin + performance.now() }));
  });
}

/** Wall-clock time the server's state first showed the rollout complete. */
async function completedAt() {
  await kube.waitForRollout('production', 'app', { timeoutMs: 60_000 });
  return performance.timeOrigin + performance.now();
}

const ours = [];
const theirs = [];
let replicas = 2;
for (let i = 0; i < 5; i++) {
  replicas = replicas === 2 ? 4 : 2;
  // runbook: the journal's rollout step-end time vs the server's completion time.
  const done = completedAtAfterChange();
  await run(process.execPath, [join(root, 'bin/runbook.js'), 'app', 'scale', '--replicas', String(replicas)]);
  const serverDone = await done;
  const runs = readdirSync(join(journal, 'runs')).sort();
  const events = readFileSync(join(journal, 'runs', runs.at(-1)), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const end = events.find((e) => e.type === 'step-end' && e.step === 'rollout');
  ours.push(new Date(end.t).getTime() - serverDone);

  // kubectl: scale with kubectl, then time rollout status's exit after completion.
  replicas = replicas === 2 ? 4 : 2;
  await run('kubectl', ['scale', 'deployment/app', `--replicas=${replicas}`, '-n', 'production', '--cache-dir', join(dir, 'kcache')]);
  const kdone = completedAtAfterChange();
  const k = await run('kubectl', ['rollout', 'status', 'deployment/app', '-n', 'production', '--timeout=60s', '--cache-dir', join(dir, 'kcache')]);
  theirs.push(k.at - (await kdone));
}

function completedAtAfterChange() {
  // Wait until the change is observed as in progress, then until it completes.
  return (async () => {
    await kube.waitFor(() => !kube.rolloutComplete('production', 'app'), { timeoutMs: 20_000 }).catch(() => undefined);
    return completedAt();
  })();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log('rollout completion reported after the last pod became ready (median of 5)');
console.log(`  runbook (watch, journal time)        ${median(ours).toFixed(0).padStart(6)} ms   (goal ≤ 1000 ms: ${median(ours) <= 1000 ? 'met' : 'MISSED'})`);
console.log(`  kubectl rollout status (process exit) ${median(theirs).toFixed(0).padStart(6)} ms`);
await kube.close();
