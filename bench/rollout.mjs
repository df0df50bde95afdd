// How soon after the rollout completes does `runbook app scale` report it complete?
// Measured side by side with `kubectl rollout status` against the same real API server (the test
// control plane: kube-apiserver, controller-manager, kwok), same kubeconfig, same run.
// Goal: within 1 s (runbook watches, it does not poll).
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitProblem, median, run, runbookBin, watchRolloutTransitions, withBenchKube, writeBenchKubeconfig } from './lib/cluster.mjs';

// Run with: node --import tsx bench/rollout.mjs (bench/run.mjs does)
const ITERATIONS = 5;
const dir = mkdtempSync(join(tmpdir(), 'runbook-bench-rollout-'));

try {
  await withBenchKube(async (kube) => {
    // One kubeconfig, straight to the API server, for both runbook and kubectl.
    const kubeconfig = writeBenchKubeconfig(kube, join(dir, 'kubeconfig'));
    await kube.seedDeployment({ name: 'app', replicas: 2, labels: { app: 'api' } });
    const config = join(dir, 'runbook.yaml');
    writeFileSync(
      config,
      `environments:\n  bench:\n    kubernetes: { kubeconfig: ${kubeconfig}, context: bench, namespace: production, deployment: app }\n    rollout: { timeout: 60s }\n    limits: { maxReplicas: 50 }\n`,
    );
    const journal = join(dir, 'journal');
    const env = { ...process.env, RUNBOOK_CONFIG: config, RUNBOOK_JOURNAL_DIR: journal, KUBECONFIG: kubeconfig, NO_COLOR: '1' };
    const kubectl = (args) => run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kcache'), ...args], { env });

    // Every moment the deployment turns from "rolling out" to "complete", as a watch on the API server sees it.
    const watch = await watchRolloutTransitions(kube, 'production', 'app');
    await watch.untilComplete();
    // The last transition since `mark` up to `until` (a few ms of slack: the harness's watch and the
    // tool's watch get the same event at nearly the same moment), else the first one since `mark`.
    const completedAt = (mark, until) =>
      watch.transitions
        .slice(mark)
        .filter((t) => t <= until + 20)
        .at(-1) ?? watch.transitions[mark];
    // Warm kubectl's discovery cache so its first measured run is like the others.
    await kubectl(['get', 'deployment/app', '-n', 'production']);

    const ours = [];
    const theirs = [];
    let replicas = 2;
    try {
      for (let i = 0; i < ITERATIONS; i++) {
        // runbook: the journal's rollout step-end time vs the observed completion.
        replicas = replicas === 2 ? 4 : 2;
        let mark = watch.transitions.length;
        const r = await run(process.execPath, [runbookBin, 'app', 'scale', '-e', 'bench', '--replicas', String(replicas), '--yes'], { env });
        if (r.code !== 0) throw exitProblem('runbook app scale', r);
        await watch.untilComplete();
        const runs = readdirSync(join(journal, 'runs'), { recursive: true })
          .map(String)
          .filter((f) => f.endsWith('.ndjson'))
          .sort();
        const events = readFileSync(join(journal, 'runs', runs.at(-1)), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
        const endEvent = events.find((e) => e.type === 'step-end' && e.step === 'rollout');
        if (!endEvent) throw new Error('runbook journal: no step-end for the rollout step');
        const end = new Date(endEvent.t).getTime();
        const doneAt = completedAt(mark, end);
        if (doneAt === undefined) throw new Error('runbook: the watch saw no rollout completion');
        ours.push(end - doneAt);

        // kubectl: scale, then rollout status; its exit time vs the observed completion.
        replicas = replicas === 2 ? 4 : 2;
        mark = watch.transitions.length;
        const s = await kubectl(['scale', 'deployment/app', `--replicas=${replicas}`, '-n', 'production']);
        if (s.code !== 0) throw exitProblem('kubectl scale', s);
        const k = await kubectl(['rollout', 'status', 'deployment/app', '-n', 'production', '--timeout=60s']);
        if (k.code !== 0) throw exitProblem('kubectl rollout status', k);
        await watch.untilComplete();
        const kDoneAt = completedAt(mark, k.exitAt);
        if (kDoneAt === undefined) throw new Error('kubectl: the watch saw no rollout completion');
        theirs.push(k.exitAt - kDoneAt);
      }
    } finally {
      watch.stop();
    }

    console.log(`rollout completion reported after the rollout completed (watch on the API server; median of ${ITERATIONS})`);
    console.log(
      `  runbook (watch, journal time)         ${median(ours).toFixed(0).padStart(6)} ms   (goal ≤ 1000 ms: ${median(ours) <= 1000 ? 'met' : 'MISSED'})   samples: ${ours.join(', ')}`,
    );
    console.log(`  kubectl rollout status (process exit) ${median(theirs).toFixed(0).padStart(6)} ms   samples: ${theirs.join(', ')}`);
    if ([...ours, ...theirs].some((ms) => ms < 0))
      console.log('  (a negative sample: this process saw the completion on its watch after the tool reported it, i.e. scheduling noise on a busy machine)');
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
