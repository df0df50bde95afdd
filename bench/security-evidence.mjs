// `runbook security evidence` (every container log streamed to its own file, 4 at a time, sha256 while
// writing) vs the seed-style kubectl loop (one `kubectl logs --all-containers` per pod, then sha256sum),
// against the same test API server in the same run. Also peak RSS: streaming keeps memory flat as logs grow.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Run with: node --import tsx bench/security-evidence.mjs (bench/run.mjs does)
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { startKubeApiServer } = await import(join(root, 'test/support/kube/index.ts'));

const PODS = 16;
const dir = mkdtempSync(join(tmpdir(), 'runbook-bench-evidence-'));
const kube = await startKubeApiServer({ readyDelayMs: 0, namespace: 'production' });
const kubeconfig = join(dir, 'kubeconfig');
await kube.writeKubeconfig(kubeconfig, { context: 'bench', namespace: 'production' });
await kube.seedDeployment({
  namespace: 'production',
  name: 'app',
  replicas: PODS,
  labels: { app: 'api' },
  containers: [
    { name: 'api', image: 'api:1' },
    { name: 'proxy', image: 'proxy:1' },
  ],
});
const pods = kube.store.list('pods', { namespace: 'production' }).map((p) => p.metadata.name);
const config = join(dir, 'runbook.yaml');
writeFileSync(config, `environments:\n  bench:\n    kubernetes: { kubeconfig: ${kubeconfig}, namespace: production, deployment: app }\n`);
const env = { ...process.env, RUNBOOK_CONFIG: config, RUNBOOK_JOURNAL_DIR: join(dir, 'journal'), KUBECONFIG: kubeconfig, NO_COLOR: '1' };

// Async: the API server lives in this process, so a synchronous spawn would stall it.
function timed(file, args, cwd) {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%M', file, ...args], { env, cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.on('exit', (code) => {
      const ms = performance.now() - t0;
      if (code !== 0) return reject(new Error(`${file} ${args.join(' ')} failed: ${stderr.slice(-500)}`));
      resolve({ ms, rssMb: Number(stderr.trim().split('\n').at(-1)) / 1024 });
    });
  });
}

function seedLogs(linesPerContainer) {
  const line = (i) => `2026-01-01T00:00:00Z INFO request id=${i} path=/api/v1/items status=200 duration_ms=${i % 97}`;
  const lines = Array.from({ length: linesPerContainer }, (_, i) => line(i));
  for (const p of pods) for (const c of ['api', 'proxy']) kube.setPodLogs('production', p, lines, { container: c });
  return (lines.join('\n').length + 1) * pods.length * 2;
}

async function seedLoop(out) {
  mkdirSync(out);
  const k = (args) => timed('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kcache'), ...args], out);
  let ms = 0;
  let rss = 0;
  for (const p of pods) {
    const r = await k(['logs', '-n', 'production', p, '--all-containers=true']);
    ms += r.ms;
    rss = Math.max(rss, r.rssMb);
  }
  return { ms, rssMb: rss };
}

console.log(`${PODS} pods × 2 containers; median of 3 runs each`);
console.log('log size    runbook evidence        seed-style kubectl loop    time ratio   runbook peak RSS');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const lines of [2_000, 20_000]) {
  const bytes = seedLogs(lines);
  const ours = [];
  const theirs = [];
  for (let i = 0; i < 3; i++) {
    ours.push(await timed(process.execPath, [join(root, 'bin/runbook.js'), 'security', 'evidence', '--dir', join(dir, `ev-${lines}-${i}`), '-q'], dir));
    // The kubectl loop's output is discarded (no files, no sha256): a floor for the seed's approach.
    theirs.push(await seedLoop(join(dir, `loop-${lines}-${i}`)));
  }
  const o = median(ours.map((r) => r.ms));
  const t = median(theirs.map((r) => r.ms));
  const mb = (bytes / 1e6).toFixed(0).padStart(4);
  console.log(`${mb} MB    ${o.toFixed(0).padStart(7)} ms            ${t.toFixed(0).padStart(7)} ms                 ${(t / o).toFixed(2)}×        ${Math.max(...ours.map((r) => r.rssMb)).toFixed(0)} MB`);
}
await kube.close();
