// Leak signals against the real control plane: `pod memory --watch` samples metrics.k8s.io (the
// harness's usage changes between samples) and prints the growth per container; `pod diagnose`
// names OOMKilled terminations (a kwok stage) with the memory at the time.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { startKube, type KubeHarness, type Pod } from '../../support/cluster/index.js';

let kube: KubeHarness;
let NS: string;
let cwd: string;

const stepData = (doc: { steps: Array<{ id: string; data: unknown }> }) => Object.fromEntries(doc.steps.map((s) => [s.id, s.data])) as Record<string, any>;

async function podsOf(app: string): Promise<string[]> {
  return (await kube.list<Pod>('pods', { namespace: NS, labelSelector: `app=${app}` }))
    .filter((p) => !p.metadata.deletionTimestamp)
    .map((p) => p.metadata.name)
    .sort();
}

beforeAll(async () => {
  kube = await startKube({ namespace: 'leaks', nodes: 1 });
  NS = kube.namespace;
  const dir = tempDir('runbook-leaks-');
  const kubeconfig = join(dir, 'kubeconfig');
  await kube.writeKubeconfig(kubeconfig, { context: 'test', namespace: NS });
  const resources = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '512Mi' } };
  await kube.seedDeployment({
    name: 'app',
    replicas: 2,
    labels: { app: 'api' },
    containers: [
      { name: 'api', image: 'registry.example.com/api:1.0.0', resources },
      { name: 'sidecar', image: 'registry.example.com/proxy:1.0.0', resources: { limits: { memory: '64Mi' } } },
    ],
  });
  cwd = writeConfig({
    default: 'prod',
    environments: { prod: { protected: true, kubernetes: { kubeconfig, context: 'test', namespace: NS, deployment: 'app', selector: 'app=api' } } },
  }).dir;
}, 120_000);

afterAll(async () => {
  await kube?.close();
});

describe('pod memory --watch', () => {
  it('samples the usage over time and prints the growth per container, fastest first', async () => {
    const [leaky, steady] = (await podsOf('api')) as [string, string];
    let mi = 100;
    const usage = async () => {
      await kube.setPodUsage(leaky, { api: { cpu: '50m', memory: `${mi}Mi` }, sidecar: { cpu: '1m', memory: '20Mi' } });
      await kube.setPodUsage(steady, { api: { cpu: '50m', memory: '150Mi' }, sidecar: { cpu: '1m', memory: '20Mi' } });
    };
    await usage();
    // The leaking container grows ~20Mi a second while the CLI samples every second.
    const grow = setInterval(() => {
      mi += 10;
      void usage();
    }, 500);
    let r;
    try {
      r = await runCli(['pod', 'memory', '--watch', '--interval', '1s', '--samples', '4', '--json'], { cwd });
    } finally {
      clearInterval(grow);
    }
    expect(r.code, r.stderr).toBe(0);
    const w = stepData(JSON.parse(r.stdout)).watch;
    expect(w).toMatchObject({ intervalMs: 1000, samples: 4 });
    expect(w.growth).toHaveLength(4);
    expect(w.growth[0]).toMatchObject({ pod: leaky, container: 'api', limit: 512 * 2 ** 20, restarts: 0 });
    expect(w.growth[0].last).toBeGreaterThan(w.growth[0].first);
    expect(w.growth[0].perMinute).toBeGreaterThan(300 * 2 ** 20);
    expect(w.growth[0].toLimitMs).toBeGreaterThan(0);
    const flat = w.growth.find((g: { pod: string; container: string }) => g.pod === steady && g.container === 'api');
    expect(flat).toMatchObject({ first: 150 * 2 ** 20, last: 150 * 2 ** 20, perMinute: 0, toLimitMs: null });
    expect(r.stderr).toMatch(/sampling memory 4 times, every 1\.0s/);
    expect(r.stderr).toMatch(/sample 4\/4: 4 container\(s\); fastest growing: /);

    await kube.setPodUsage(leaky, { api: { cpu: '50m', memory: '300Mi' }, sidecar: { cpu: '1m', memory: '20Mi' } });
    const text = await runCli(['pod', 'memory', '--watch', '--interval', '1s', '--samples', '2'], { cwd });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/growth over 2 samples, every 1\.0s/);
    expect(text.stdout).toMatch(new RegExp(`${steady}\\s+api\\s+150Mi\\s+150Mi\\s+steady\\s+steady\\s+512Mi\\s+29\\.3%\\s+-\\s+0`));
  });

  it('--interval and --samples need --watch; a unitless or too short interval is refused (exit 2, nothing contacted)', async () => {
    const seen = kube.requests.length;
    for (const [argv, message] of [
      [['--samples', '3'], /--interval and --samples go with --watch/],
      [['--watch', '--interval', '10'], /has no unit/],
      [['--watch', '--interval', '500ms'], /--interval must be at least 1s/],
      [['--watch', '--samples', '1'], /--samples must be at least 2/],
    ] as const) {
      const r = await runCli(['pod', 'memory', ...argv], { cwd });
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(kube.requests.length).toBe(seen);
  });
});

describe('pod diagnose and OOM kills', () => {
  it('names the OOMKilled termination with the memory at the time (its limit) and now, and the next commands', async () => {
    const [a] = (await podsOf('api')) as [string];
    await kube.crashLoop(a, { reason: 'OOMKilled', exitCode: 137, restartCount: 3 });
    await kube.setPodUsage(a, { api: { cpu: '50m', memory: '480Mi' }, sidecar: { cpu: '1m', memory: '20Mi' } });
    const r = await runCli(['pod', 'diagnose', a, '--json'], { cwd });
    expect(r.code, r.stderr).toBe(4);
    const f = stepData(JSON.parse(r.stdout)).findings.findings;
    const oom = f.find((x: { container?: string; problem: string }) => x.container === 'api' && /crash-looping/.test(x.problem));
    expect(oom.problem).toMatch(/last exit code 137 \(OOMKilled\)/);
    expect(oom.cause).toMatch(/OOMKilled, exit code 137/);
    expect(oom.cause).toContain('it was killed at its memory limit of 512Mi (its memory at the time); 480Mi now (93.8% of the limit), since its restart');
    expect(oom.next).toEqual(expect.arrayContaining(['runbook pod memory --containers', `runbook pod heap-dump ${a} --container api`]));
    const text = await runCli(['pod', 'diagnose', a], { cwd });
    expect(text.stdout).toMatch(/last termination: OOMKilled, exit code 137, finished \S+ — at its memory limit of 512Mi/);
  });
});
