import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import type { Deployment, Pod, KubeObject } from '../support/kube/index.js';

type Hpa = KubeObject & { spec: { minReplicas: number; maxReplicas: number } };

let sb: Sandbox;
const NS = 'production';

function deployment(): Deployment {
  return sb.kube.store.get<Deployment>('deployments', NS, 'app')!;
}

function cli(argv: string[], extra: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, ...(extra.env ?? {}) } });
}

function mutationsOf(method: string, pathPart: string) {
  return sb.kube.mutations().filter((m) => m.method === method && m.path.includes(pathPart));
}

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes'] });
});
afterAll(async () => {
  await sb?.stop();
});
beforeEach(async () => {
  sb.kube.faults.clear();
  await sb.kube.waitForRollout(NS, 'app', { timeoutMs: 20_000 });
});

describe('app procedures against the Kubernetes API server', () => {
  it('app restart: rolling restart through the restartedAt annotation, waits for the rollout, checks health, shows new pods\' logs', async () => {
    const before = deployment().metadata.generation ?? 0;
    const r = await cli(['app', 'restart', '--json']);
    expect(r.stderr).toContain('app restart');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps.map((s: { id: string; status: string }) => `${s.id}:${s.status}`)).toEqual([
      'status:succeeded',
      'restart:succeeded',
      'rollout:succeeded',
      'health:succeeded',
      'logs:succeeded',
    ]);
    const d = deployment();
    expect(d.spec.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']).toBe(doc.steps[1].data.restartedAt);
    expect(d.metadata.generation).toBeGreaterThan(before);
    expect(sb.kube.rolloutComplete(NS, 'app')).toBe(true);
    // The rollout was watched, not polled.
    expect(sb.kube.requests.some((q) => q.watch && q.path.endsWith('/deployments'))).toBe(true);
    const newHash = sb.kube.store.list<Pod>('pods', { namespace: NS, labelSelector: 'app=api' });
    const logPods = doc.steps[4].data.pods.map((p: { pod: string }) => p.pod);
    expect(logPods.length).toBeGreaterThan(0);
    for (const p of logPods) expect(newHash.some((x) => x.metadata.name === p)).toBe(true);
  });

  it('app restart --dry-run: reads are real, the patch is validated by the server with dryRun=All, nothing persists', async () => {
    const before = await sb.fingerprint();
    const seen = sb.kube.requests.length;
    const r = await cli(['app', 'restart', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stderr).toMatch(/would restart deployment\/app/);
    expect(sb.kube.requests.slice(seen).some((q) => q.method === 'PATCH' && q.dryRun)).toBe(true);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('app restart in a protected environment without a terminal fails closed (exit 3), no change', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['app', 'restart', '--env', 'sandbox-protected']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--yes/);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('app restart fails with a clear line when the rollout does not complete in time', async () => {
    sb.kube.controller.failPods = 'never-ready';
    try {
      const r = await cli(['app', 'restart', '--rollout-timeout', '1s']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/rollout of deployment\/app not complete after 1\.0s/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      sb.kube.controller.failPods = undefined;
    }
    // Let the stuck rollout finish for the next tests.
    const pods = sb.kube.store.list<Pod>('pods', { namespace: NS, labelSelector: 'app=api' });
    for (const p of pods) sb.kube.controller.markReady(NS, p.metadata.name!);
  });

  it('app scale: scales through the /scale subresource and waits until the pods are ready', async () => {
    const seen = mutationsOf('PATCH', '/deployments/app/scale').length;
    const r = await cli(['app', 'scale', '--replicas', '5', '--json']);
    expect(r.code).toBe(0);
    expect(deployment().spec.replicas).toBe(5);
    expect(deployment().status?.readyReplicas).toBe(5);
    expect(mutationsOf('PATCH', '/deployments/app/scale')).toHaveLength(seen + 1);
    const back = await cli(['app', 'scale', '--replicas', '3']);
    expect(back.code).toBe(0);
    expect(deployment().spec.replicas).toBe(3);
  });

  it('app scale to 0 is destructive: a declined prompt exits 3 and leaves the count', async () => {
    const r = await cli(['app', 'scale', '--replicas', '0'], { tty: true, answers: [false] });
    expect(r.code).toBe(3);
    expect(r.prompter).toBeDefined();
    expect(deployment().spec.replicas).toBe(3);
  });

  it('app scale: a failed wait puts the recorded count back (exit 1)', async () => {
    sb.kube.controller.failPods = 'never-ready';
    try {
      const r = await cli(['app', 'scale', '--replicas', '6', '--rollout-timeout', '1s', '--json']);
      expect(r.code).toBe(1);
      const doc = JSON.parse(r.stdout);
      expect(doc.compensations).toEqual([{ step: 'scale', status: 'succeeded' }]);
    } finally {
      sb.kube.controller.failPods = undefined;
    }
    expect(deployment().spec.replicas).toBe(3);
  });

  it('app scale: when the scale-back also fails, exit 5 names the command to run by hand', async () => {
    sb.kube.controller.failPods = 'never-ready';
    // First PATCH /scale (the change) succeeds; the compensation's PATCH fails.
    let reached = false;
    try {
      const r = cli(['app', 'scale', '--replicas', '6', '--rollout-timeout', '1s']);
      await sb.kube.waitFor(() => deployment().spec.replicas === 6, { timeoutMs: 5000 });
      reached = true;
      sb.kube.faults.add({ method: 'PATCH', path: /\/deployments\/app\/scale$/, times: 5, status: 500 });
      const res = await r;
      expect(res.code).toBe(5);
      expect(res.stderr).toContain('kubectl scale deployment/app --replicas=3 -n production');
    } finally {
      sb.kube.faults.clear();
      sb.kube.controller.failPods = undefined;
    }
    expect(reached).toBe(true);
    const fix = await cli(['app', 'scale', '--replicas', '3']);
    expect(fix.code).toBe(0);
  });

  it('app autoscale creates an autoscaling/v2 HPA, then updates it in place; app scaling shows it', async () => {
    const r1 = await cli(['app', 'autoscale', '--min', '2', '--max', '10', '--cpu-percent', '70']);
    expect(r1.code).toBe(0);
    const hpa = sb.kube.store.get<Hpa>('horizontalpodautoscalers', NS, 'app')!;
    expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 10 });
    const r2 = await cli(['app', 'autoscale', '--min', '3', '--max', '12', '--cpu-percent', '60']);
    expect(r2.code).toBe(0);
    expect(sb.kube.store.get<Hpa>('horizontalpodautoscalers', NS, 'app')!.spec).toMatchObject({ minReplicas: 3, maxReplicas: 12 });
    const s = await cli(['app', 'scaling']);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/HPA\s+MIN\s+MAX/);
    expect(s.stdout).toMatch(/app\s+3\s+12/);
    expect(s.stdout.split('\n').filter((l) => l.startsWith('app-')).length).toBe(3);
    const j = await cli(['app', 'scaling', '--json']);
    expect(JSON.parse(j.stdout).steps[0].data.hpa).toMatchObject({ min: 3, max: 12, cpuTarget: 60 });
  });

  it('app resources: changes requests/limits of the container, validated server-side, and waits for the rollout', async () => {
    const r = await cli(['app', 'resources', '--cpu-request', '300m', '--memory-limit', '1Gi']);
    expect(r.code).toBe(0);
    const c = deployment().spec.template.spec.containers[0];
    expect(c.resources).toEqual({ requests: { cpu: '300m', memory: '256Mi' }, limits: { cpu: '500m', memory: '1Gi' } });
    const bad = await cli(['app', 'resources', '--cpu-request', '2']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cpu request 2 is above its limit 500m/);
  });

  it('app env set / unset: as kubectl set env, secrets masked, previous environment restored on failure', async () => {
    const r = await cli(['app', 'env', 'set', 'RATE_LIMIT=100', 'API_TOKEN=tok-abc-123']);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('tok-abc-123');
    const env = () => deployment().spec.template.spec.containers[0].env ?? [];
    expect(env()).toEqual(expect.arrayContaining([{ name: 'RATE_LIMIT', value: '100' }, { name: 'API_TOKEN', value: 'tok-abc-123' }]));
    const u = await cli(['app', 'env', 'unset', 'API_TOKEN']);
    expect(u.code).toBe(0);
    expect(env().map((e) => e.name)).not.toContain('API_TOKEN');

    const before = JSON.stringify(env());
    sb.kube.controller.failPods = 'never-ready';
    try {
      const f = await cli(['app', 'env', 'set', 'RATE_LIMIT=5', '--rollout-timeout', '1s']);
      expect(f.code).toBe(1);
    } finally {
      sb.kube.controller.failPods = undefined;
    }
    expect(JSON.stringify(env())).toBe(before);
  });

  it('app rollback: back to the previous revision (as kubectl rollout undo), and to a given one', async () => {
    const image = () => deployment().spec.template.spec.containers[0].image;
    const set = await cli(['app', 'env', 'set', 'VERSION_MARK=two']);
    expect(set.code).toBe(0);
    const r = await cli(['app', 'rollback', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps[1].data.to).toBeLessThan(doc.steps[1].data.from);
    expect((deployment().spec.template.spec.containers[0].env ?? []).map((e) => e.name)).not.toContain('VERSION_MARK');
    expect(image()).toBe('registry.example.com/api:1.0.0');
    const unknown = await cli(['app', 'rollback', '--to-revision', '999']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/revision 999 not found/);
  });

  it('app circuit-breaker: reads the state, switches it, verifies, and skips when already there', async () => {
    const on = await cli(['app', 'circuit-breaker', 'enable', '--json']);
    expect(on.code, on.stderr).toBe(0);
    expect(JSON.parse(on.stdout).steps[1].data).toEqual({ previous: false, now: true });
    const again = await cli(['app', 'circuit-breaker', 'enable', '--json']);
    expect(JSON.parse(again.stdout).steps[1].status).toBe('skipped');
    const off = await cli(['app', 'circuit-breaker', 'disable']);
    expect(off.code).toBe(0);
    const bad = await cli(['app', 'circuit-breaker', 'toggle']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/one of enable, disable/);
  });

  it('two operators: a held lease makes the second run exit 6 naming the holder', async () => {
    sb.kube.store.put({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'runbook-app-scale-app', namespace: NS },
      spec: { holderIdentity: 'alice@laptop run 20261129T030000-beef', leaseDurationSeconds: 60, acquireTime: new Date().toISOString(), renewTime: new Date().toISOString() },
    } as never);
    try {
      const r = await cli(['app', 'scale', '--replicas', '4']);
      expect(r.code).toBe(6);
      expect(r.stderr).toMatch(/held by alice@laptop run 20261129T030000-beef since/);
      expect(deployment().spec.replicas).toBe(3);
    } finally {
      sb.kube.store.remove('leases', NS, 'runbook-app-scale-app');
    }
  });
});
