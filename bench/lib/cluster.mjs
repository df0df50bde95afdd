// Shared by the Kubernetes benchmarks: a private real control plane (etcd, kube-apiserver,
// controller-manager, scheduler, kwok, metrics) with the `production` namespace, and a harness-side
// watch on a deployment. Not a benchmark itself (bench/run.mjs only runs the scripts it lists).
// Needs tsx (node --import tsx), which bench/run.mjs passes.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The built CLI (`npm run build` first); RUNBOOK_BENCH_BIN measures another build instead. */
export const runbookBin = process.env.RUNBOOK_BENCH_BIN ?? join(root, 'bin', 'runbook.js');
/** Another build to measure side by side with this one (e.g. the one before a change), if given. */
export const baselineBin = process.env.RUNBOOK_BENCH_BASELINE || undefined;

/** A non-zero exit, with what the code means when it is Node's own. */
export function exitProblem(what, r) {
  const why = r.code === 13 ? ' (Node exit 13: the event loop emptied while the top-level await was still pending)' : '';
  return new Error(`${what} exited ${r.code}${why}:\n${r.stderr.slice(-1500)}`);
}

/**
 * Starts a control plane of its own (~8 s; the first run builds the Go binary) and a harness on
 * namespace `production`. `kube.close()` deletes the namespace and stops the control plane (the
 * harness also kills it if this process exits or is interrupted first).
 */
export async function startBenchKube() {
  const { startControlPlane } = await import(join(root, 'test/support/cluster/control-plane.ts'));
  const { startKube } = await import(join(root, 'test/support/cluster/index.ts'));
  const controlPlane = await startControlPlane();
  let kube;
  try {
    kube = await startKube({ namespace: 'production', controlPlane, exactNamespace: true });
  } catch (err) {
    await controlPlane.stop();
    throw err;
  }
  return kube;
}

/**
 * The kubeconfig both tools use: user `operator` (system:masters) with a client certificate,
 * straight to the API server, so neither pays for the harness's proxy.
 */
export function writeBenchKubeconfig(kube, path) {
  return kube.userKubeconfig(path, { name: 'operator', groups: ['system:masters'], context: 'bench', namespace: 'production' });
}

/** Closes the harness (and its control plane) whether `body` succeeds or throws. */
export async function withBenchKube(body) {
  const kube = await startBenchKube();
  try {
    return await body(kube);
  } finally {
    await kube.close();
  }
}

/** Whether a deployment's rollout is complete, by the same rule as the harness's rolloutComplete. */
export function deploymentComplete(d) {
  const want = d?.spec?.replicas ?? 1;
  const s = d?.status;
  if (!s) return false;
  return (
    (s.observedGeneration ?? 0) >= (d.metadata.generation ?? 1) &&
    (s.updatedReplicas ?? 0) === want &&
    (s.replicas ?? 0) === want &&
    (s.availableReplicas ?? 0) === want
  );
}

/**
 * Watches one deployment straight on the API server (admin client certificate from
 * `kube.info.kubeconfig`, no proxy) and records `Date.now()` at every transition from not complete
 * to complete. Reconnects from the last resourceVersion if the server ends the watch.
 */
export async function watchRolloutTransitions(kube, namespace, name) {
  const { identityFromKubeconfig } = await import(join(root, 'test/support/cluster/proxy.ts'));
  const { cert, key } = identityFromKubeconfig(kube.info.kubeconfig);
  const ca = readFileSync(kube.info.caFile);
  const transitions = [];
  const state = { complete: undefined, resourceVersion: undefined };
  let req;
  let stopped = false;
  let resolveFirst;
  const first = new Promise((r) => (resolveFirst = r));

  const connect = () => {
    const q = new URLSearchParams({ watch: 'true', fieldSelector: `metadata.name=${name}`, timeoutSeconds: '3600' });
    if (state.resourceVersion) q.set('resourceVersion', state.resourceVersion);
    const url = new URL(`/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments?${q}`, kube.info.server);
    req = request(url, { method: 'GET', ca, cert, key, headers: { accept: 'application/json' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        // 410 Gone: start over from the current state (a fresh watch sends it as ADDED).
        if (res.statusCode === 410) state.resourceVersion = undefined;
        if (!stopped) setTimeout(connect, 100);
        return;
      }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk) => {
        const at = Date.now();
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const ev = JSON.parse(line);
          if (ev.type === 'ERROR') {
            if (ev.object?.code === 410) state.resourceVersion = undefined;
            continue;
          }
          if (ev.type === 'BOOKMARK') {
            state.resourceVersion = ev.object?.metadata?.resourceVersion ?? state.resourceVersion;
            continue;
          }
          state.resourceVersion = ev.object?.metadata?.resourceVersion ?? state.resourceVersion;
          const now = ev.type !== 'DELETED' && deploymentComplete(ev.object);
          if (now && state.complete === false) transitions.push(at);
          state.complete = now;
          resolveFirst();
        }
      });
      res.on('end', () => {
        if (!stopped) setTimeout(connect, 10);
      });
      res.on('error', () => undefined);
    });
    req.on('error', () => {
      if (!stopped) setTimeout(connect, 100);
    });
    req.end();
  };
  connect();
  await first;

  return {
    /** Timestamps (ms since the epoch) at which the harness saw the rollout turn complete. */
    transitions,
    isComplete: () => state.complete === true,
    /** Resolves once the watch has seen the rollout complete (throws after `timeoutMs`). */
    async untilComplete(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (state.complete !== true) {
        if (Date.now() > deadline) throw new Error(`deployment ${namespace}/${name}: rollout not complete within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    stop() {
      stopped = true;
      req?.destroy();
    },
  };
}

/**
 * Spawns a process asynchronously (the harness's proxy lives in this process: a synchronous spawn
 * would stall every request the child makes). Resolves with its exit code, elapsed ms and output.
 */
export function run(file, args, opts = {}) {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', opts.stdout ? 'pipe' : 'ignore', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr = (stderr + c).slice(-20_000)));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), ms: performance.now() - t0, exitAt: Date.now(), stdout, stderr }));
  });
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
