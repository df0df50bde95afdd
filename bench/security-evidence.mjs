// `runbook security evidence` (every container log streamed to its own file, 4 at a time, sha256 while
// writing) vs the seed-style kubectl loop (one `kubectl logs --all-containers` per pod, then sha256sum),
// against the same real API server (the test control plane; kwok serves each container's log from a
// file through the kubelet log API) with the same kubeconfig, in the same run. Also peak RSS:
// streaming keeps memory flat as logs grow.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitProblem, median, run, runbookBin, withBenchKube, writeBenchKubeconfig } from './lib/cluster.mjs';

// Run with: node --import tsx bench/security-evidence.mjs (bench/run.mjs does)
const PODS = 16;
const CONTAINERS = ['api', 'proxy'];
const dir = mkdtempSync(join(tmpdir(), 'runbook-bench-evidence-'));

try {
  await withBenchKube(async (kube) => {
    const kubeconfig = writeBenchKubeconfig(kube, join(dir, 'kubeconfig'));
    await kube.seedDeployment({
      name: 'app',
      replicas: PODS,
      labels: { app: 'api' },
      containers: CONTAINERS.map((name) => ({ name, image: `registry.example.com/${name}:1` })),
    });
    const pods = (await kube.list('pods', { namespace: 'production', labelSelector: 'app=api' }))
      .filter((p) => !p.metadata.deletionTimestamp)
      .map((p) => p.metadata.name);
    if (pods.length !== PODS) throw new Error(`expected ${PODS} pods, found ${pods.length}`);
    const config = join(dir, 'runbook.yaml');
    writeFileSync(config, `environments:\n  bench:\n    kubernetes: { kubeconfig: ${kubeconfig}, context: bench, namespace: production, deployment: app }\n`);
    const env = { ...process.env, RUNBOOK_CONFIG: config, RUNBOOK_JOURNAL_DIR: join(dir, 'journal'), KUBECONFIG: kubeconfig, NO_COLOR: '1' };

    // Async: the harness's watch and lease renewals live in this process.
    async function timed(file, args, cwd) {
      const r = await run('/usr/bin/time', ['-f', '%M', file, ...args], { env, cwd });
      if (r.code !== 0) throw exitProblem(`${file} ${args.join(' ')}`, r);
      return { ms: r.ms, rssMb: Number(r.stderr.trim().split('\n').at(-1)) / 1024 };
    }

    /** The log as kubectl gets it (through the API server and kwok), to check a seeded log is served. */
    const served = async (pod, container) => {
      const r = await run('kubectl', ['--kubeconfig', kubeconfig, 'logs', '-n', 'production', pod, '-c', container], { env, stdout: true });
      return r.code === 0 ? r.stdout : '';
    };

    async function seedLogs(linesPerContainer) {
      const line = (i) => `2026-01-01T00:00:00Z INFO request id=${i} path=/api/v1/items status=200 duration_ms=${i % 97}`;
      const lines = Array.from({ length: linesPerContainer }, (_, i) => line(i));
      for (const p of pods) for (const c of CONTAINERS) await kube.setPodLogs(p, lines, { container: c });
      // kwok picks up a Logs object through its informer: wait until the last pod's logs are served in full.
      const want = `${lines.join('\n')}\n`;
      const deadline = Date.now() + 30_000;
      for (const c of CONTAINERS) {
        while ((await served(pods.at(-1), c)) !== want) {
          if (Date.now() > deadline) throw new Error(`kwok does not serve the seeded log of ${pods.at(-1)}/${c}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      return want.length * pods.length * CONTAINERS.length;
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

    /** The evidence run really copied every seeded log (not, say, empty logs kwok served early). */
    const checkEvidence = (parent, bytes) => {
      const manifestPath = readdirSync(parent, { recursive: true }).find((f) => String(f).endsWith('manifest.json'));
      if (!manifestPath) throw new Error(`no manifest.json under ${parent}`);
      const logs = JSON.parse(readFileSync(join(parent, String(manifestPath)), 'utf8')).files.filter((f) => f.container && !f.previous);
      const got = logs.reduce((n, f) => n + f.bytes, 0);
      const errors = logs.filter((f) => f.error);
      if (logs.length !== PODS * CONTAINERS.length || got !== bytes || errors.length) {
        throw new Error(
          `evidence: ${logs.length} logs, ${got} bytes (expected ${PODS * CONTAINERS.length}, ${bytes})${errors.length ? `; ${errors[0].file}: ${errors[0].error}` : ''}`,
        );
      }
    };

    console.log(`${PODS} pods × ${CONTAINERS.length} containers; median of 3 runs each`);
    console.log('log size    runbook evidence        seed-style kubectl loop    time ratio   runbook peak RSS');
    for (const lines of [2_000, 20_000]) {
      const bytes = await seedLogs(lines);
      const ours = [];
      const theirs = [];
      for (let i = 0; i < 3; i++) {
        ours.push(await timed(process.execPath, [runbookBin, 'security', 'evidence', '-e', 'bench', '--dir', join(dir, `ev-${lines}-${i}`), '-q'], dir));
        if (i === 0) checkEvidence(join(dir, `ev-${lines}-${i}`), bytes);
        // The kubectl loop's output is discarded (no files, no sha256): a floor for the seed's approach.
        theirs.push(await seedLoop(join(dir, `loop-${lines}-${i}`)));
      }
      const o = median(ours.map((r) => r.ms));
      const t = median(theirs.map((r) => r.ms));
      const mb = (bytes / 1e6).toFixed(0).padStart(4);
      console.log(
        `${mb} MB    ${o.toFixed(0).padStart(7)} ms            ${t.toFixed(0).padStart(7)} ms                 ${(t / o).toFixed(2)}×        ${Math.max(...ours.map((r) => r.rssMb)).toFixed(0)} MB`,
      );
    }
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
