import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import type { Deployment, Pod, KubeObject } from '../../support/cluster/index.js';

type Hpa = KubeObject & { spec: { minReplicas: number; maxReplicas: number; scaleTargetRef: { kind: string; name: string } } };

let sb: Sandbox;

async function deployment(): Promise<Deployment> {
  const d = await sb.kube.get<Deployment>('deployments', sb.namespace, 'app');
  if (!d) throw new Error('deployment app is gone');
  return d;
}

async function pods(): Promise<Pod[]> {
  return sb.kube.list<Pod>('pods', { namespace: sb.namespace, labelSelector: 'app=api' });
}

async function hpas(): Promise<Hpa[]> {
  return sb.kube.list<Hpa>('horizontalpodautoscalers', { namespace: sb.namespace });
}

/**
 * After a test made new pods never become ready: new pods start normally again, and the stuck ones
 * are deleted so their ReplicaSet replaces them (a real cluster has no "mark ready").
 */
async function unstick(): Promise<void> {
  await sb.kube.failPods(undefined);
  for (const p of await pods()) {
    const ready = p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    if (!ready && !p.metadata.deletionTimestamp) await sb.kube.remove('pods', sb.namespace, p.metadata.name);
  }
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
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
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
});

describe('app procedures against the Kubernetes API server', () => {
  it("app restart: rolling restart through the restartedAt annotation, waits for the rollout, checks health, shows new pods' logs", async () => {
    const before = (await deployment()).metadata.generation ?? 0;
    const r = await cli(['app', 'restart', '--json']);
    expect(r.stderr).toContain('app restart');
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps.map((s: { id: string; status: string }) => `${s.id}:${s.status}`)).toEqual([
      'status:succeeded',
      'restart:succeeded',
      'rollout:succeeded',
      'health:succeeded',
      'logs:succeeded',
    ]);
    const d = await deployment();
    expect(d.spec.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']).toBe(doc.steps[1].data.restartedAt);
    expect(d.metadata.generation).toBeGreaterThan(before);
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
    // The rollout was watched, not polled.
    expect(sb.kube.requests.some((q) => q.watch && q.path.endsWith('/deployments'))).toBe(true);
    // The logs shown are those of the newest ReplicaSet's pods.
    const sets = await sb.kube.list<KubeObject & { spec: { replicas: number } }>('replicasets', { namespace: sb.namespace, labelSelector: 'app=api' });
    const revision = (o: KubeObject) => Number(o.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
    const newest = sets.sort((a, b) => revision(b) - revision(a))[0]!;
    expect(newest.spec.replicas).toBe(3);
    const newHash = newest.metadata.labels?.['pod-template-hash'];
    const current = await pods();
    const logPods = doc.steps[4].data.pods.map((p: { pod: string }) => p.pod);
    expect(logPods.length).toBeGreaterThan(0);
    for (const p of logPods) {
      const pod = current.find((x) => x.metadata.name === p);
      expect(pod, p).toBeDefined();
      expect(pod!.metadata.labels?.['pod-template-hash']).toBe(newHash);
    }
  });

  it('app restart --dry-run: reads are real, the patch is validated by the server with dryRun=All, nothing persists', async () => {
    const before = await sb.fingerprint();
    const seen = sb.kube.requests.length;
    const r = await cli(['app', 'restart', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stderr).toMatch(/would restart deployment\/app/);
    expect(sb.kube.requests.slice(seen).some((q) => q.method === 'PATCH' && q.dryRun && q.status === 200)).toBe(true);
    // No write persisted (access reviews only ask the server what is allowed; they store nothing).
    expect(sb.kube.mutations().filter((m) => sb.kube.requests.indexOf(m) >= seen && !/\/selfsubject\w+reviews$|\/leases/.test(m.path))).toEqual([]);
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
    await sb.kube.failPods('never-ready');
    try {
      const r = await cli(['app', 'restart', '--rollout-timeout', '1s']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/rollout of deployment\/app not complete after 1\.0s/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      // Let the stuck rollout finish for the next tests.
      await unstick();
    }
  });

  it('app scale: scales through the /scale subresource and waits until the pods are ready', async () => {
    const seen = mutationsOf('PATCH', '/deployments/app/scale').length;
    const r = await cli(['app', 'scale', '--replicas', '5', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = await deployment();
    expect(d.spec.replicas).toBe(5);
    expect(d.status?.readyReplicas).toBe(5);
    expect(mutationsOf('PATCH', '/deployments/app/scale')).toHaveLength(seen + 1);
    const back = await cli(['app', 'scale', '--replicas', '3']);
    expect(back.code, back.stderr).toBe(0);
    expect((await deployment()).spec.replicas).toBe(3);
  });

  it('app scale to 0 is destructive: a declined prompt exits 3 and leaves the count', async () => {
    const r = await cli(['app', 'scale', '--replicas', '0'], { tty: true, answers: [false] });
    expect(r.code).toBe(3);
    expect(r.prompter).toBeDefined();
    expect((await deployment()).spec.replicas).toBe(3);
  });

  it('app scale: a failed wait puts the recorded count back (exit 1)', async () => {
    await sb.kube.failPods('never-ready');
    try {
      const r = await cli(['app', 'scale', '--replicas', '6', '--rollout-timeout', '1s', '--json']);
      expect(r.code, r.stderr).toBe(1);
      const doc = JSON.parse(r.stdout);
      expect(doc.compensations).toEqual([{ step: 'scale', status: 'succeeded' }]);
    } finally {
      await sb.kube.failPods(undefined);
    }
    expect((await deployment()).spec.replicas).toBe(3);
    await unstick();
  });

  it('app scale: when the scale-back also fails, exit 5 names the command to run by hand', async () => {
    await sb.kube.failPods('never-ready');
    // First PATCH /scale (the change) succeeds; the compensation's PATCH fails.
    try {
      const r = cli(['app', 'scale', '--replicas', '6', '--rollout-timeout', '1s']);
      await sb.kube.waitFor(async () => (await deployment()).spec.replicas === 6, { timeoutMs: 5000 });
      sb.kube.faults.add({ method: 'PATCH', path: /\/deployments\/app\/scale$/, times: 5, status: 500 });
      const res = await r;
      expect(res.code, res.stderr).toBe(5);
      expect(res.stderr).toContain(`kubectl scale deployment/app --replicas=3 -n ${sb.namespace}`);
    } finally {
      sb.kube.faults.clear();
      await sb.kube.failPods(undefined);
    }
    expect((await deployment()).spec.replicas).toBe(6);
    const fix = await cli(['app', 'scale', '--replicas', '3']);
    expect(fix.code, fix.stderr).toBe(0);
    await unstick();
  });

  it('app autoscale creates an autoscaling/v2 HPA, then updates it in place; app scaling shows it', async () => {
    // CPU use well under the targets below (40% of the 250m request): the real HPA controller never
    // scales up, and its 5-minute scale-down stabilization keeps the count at 3 meanwhile.
    await sb.kube.setUsageByPrefix('app-', { '*': { cpu: '100m', memory: '300Mi' } });
    try {
      const r1 = await cli(['app', 'autoscale', '--min', '2', '--max', '10', '--cpu-percent', '70']);
      expect(r1.code, r1.stderr).toBe(0);
      const hpa = (await sb.kube.get<Hpa>('horizontalpodautoscalers', sb.namespace, 'app'))!;
      expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 10, scaleTargetRef: { kind: 'Deployment', name: 'app' } });
      const r2 = await cli(['app', 'autoscale', '--min', '3', '--max', '12', '--cpu-percent', '60']);
      expect(r2.code, r2.stderr).toBe(0);
      expect((await hpas()).map((h) => h.metadata.name)).toEqual(['app']);
      const updated = (await sb.kube.get<Hpa>('horizontalpodautoscalers', sb.namespace, 'app'))!;
      expect(updated.spec).toMatchObject({ minReplicas: 3, maxReplicas: 12 });
      expect(updated.metadata.uid).toBe(hpa.metadata.uid);
      await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
      // A rollout is complete while pods it replaced may still be terminating (on a loaded machine kwok
      // can take a while to remove them): app scaling shows those as Terminating, as kubectl does.
      const live = (ps: Pod[]) => ps.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name);
      await sb.kube.waitFor(async () => live(await pods()).length === 3, { what: 'three live app pods', timeoutMs: 30_000 });
      const s = await cli(['app', 'scaling']);
      expect(s.code, s.stderr).toBe(0);
      expect(s.stdout).toMatch(/HPA\s+MIN\s+MAX/);
      expect(s.stdout).toMatch(/app\s+3\s+12/);
      const shown = s.stdout.split('\n').filter((l) => l.startsWith('app-') && !/\sTerminating\s/.test(l));
      expect(shown.map((l) => l.split(/\s+/)[0]).sort()).toEqual(live(await pods()).sort());
      const j = await cli(['app', 'scaling', '--json']);
      expect(JSON.parse(j.stdout).steps[0].data.hpa).toMatchObject({ min: 3, max: 12, cpuTarget: 60 });
    } finally {
      // An autoscaler left behind would change the counts the later tests expect.
      await sb.kube.remove('horizontalpodautoscalers', sb.namespace, 'app');
    }
  });

  it('app autoscale updates the autoscaler that targets the deployment even when it has another name (no second HPA)', async () => {
    await sb.kube.create({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'api-autoscaler', namespace: sb.namespace },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'app' },
        minReplicas: 3,
        maxReplicas: 6,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }],
      },
    } as KubeObject);
    try {
      const r = await cli(['app', 'autoscale', '--min', '3', '--max', '8', '--cpu-percent', '75', '--json']);
      expect(r.code, r.stderr).toBe(0);
      // Two HPAs on one deployment fight (the HPA controller reports AmbiguousSelector and stops scaling).
      const targeting = (await hpas()).filter((h) => h.spec.scaleTargetRef.name === 'app');
      expect(targeting.map((h) => h.metadata.name)).toEqual(['api-autoscaler']);
      expect(targeting[0]!.spec).toMatchObject({ minReplicas: 3, maxReplicas: 8 });
    } finally {
      await sb.kube.remove('horizontalpodautoscalers', sb.namespace, 'api-autoscaler');
      await sb.kube.remove('horizontalpodautoscalers', sb.namespace, 'app');
    }
  });

  it('app autoscale refuses when two autoscalers already target the deployment, and creates none', async () => {
    const hpa = (name: string) =>
      ({
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: { name, namespace: sb.namespace },
        spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'app' }, minReplicas: 3, maxReplicas: 6 },
      }) as KubeObject;
    await sb.kube.create(hpa('api-a'));
    await sb.kube.create(hpa('api-b'));
    try {
      const r = await cli(['app', 'autoscale', '--min', '3', '--max', '8']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/2 autoscalers target deployment\/app: api-a, api-b/);
      expect((await hpas()).map((h) => h.metadata.name).sort()).toEqual(['api-a', 'api-b']);
      expect((await hpas()).map((h) => h.spec.maxReplicas)).toEqual([6, 6]);
    } finally {
      await sb.kube.remove('horizontalpodautoscalers', sb.namespace, 'api-a');
      await sb.kube.remove('horizontalpodautoscalers', sb.namespace, 'api-b');
    }
  });

  it('app resources: changes requests/limits of the container, validated server-side, and waits for the rollout', async () => {
    const r = await cli(['app', 'resources', '--cpu-request', '300m', '--memory-limit', '1Gi']);
    expect(r.code, r.stderr).toBe(0);
    const d = await deployment();
    expect(d.spec.template.spec.containers[0]!.resources).toEqual({ requests: { cpu: '300m', memory: '256Mi' }, limits: { cpu: '500m', memory: '1Gi' } });
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
    const bad = await cli(['app', 'resources', '--cpu-request', '2']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cpu request 2 is above its limit 500m/);
  });

  it('app env set / unset: as kubectl set env, secrets masked, previous environment restored on failure', async () => {
    const r = await cli(['app', 'env', 'set', 'RATE_LIMIT=100', 'API_TOKEN=tok-abc-123']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('tok-abc-123');
    const env = async () => (await deployment()).spec.template.spec.containers[0]!.env ?? [];
    expect(await env()).toEqual(
      expect.arrayContaining([
        { name: 'RATE_LIMIT', value: '100' },
        { name: 'API_TOKEN', value: 'tok-abc-123' },
      ]),
    );
    const u = await cli(['app', 'env', 'unset', 'API_TOKEN']);
    expect(u.code, u.stderr).toBe(0);
    expect((await env()).map((e) => e.name)).not.toContain('API_TOKEN');

    const before = JSON.stringify(await env());
    await sb.kube.failPods('never-ready');
    try {
      const f = await cli(['app', 'env', 'set', 'RATE_LIMIT=5', '--rollout-timeout', '1s']);
      expect(f.code, f.stderr).toBe(1);
    } finally {
      await sb.kube.failPods(undefined);
    }
    expect(JSON.stringify(await env())).toBe(before);
    await unstick();
  });

  it('app rollback: back to the previous revision (as kubectl rollout undo), and to a given one', async () => {
    const image = async () => (await deployment()).spec.template.spec.containers[0]!.image;
    const set = await cli(['app', 'env', 'set', 'VERSION_MARK=two']);
    expect(set.code, set.stderr).toBe(0);
    const r = await cli(['app', 'rollback', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps[1].data.to).toBeLessThan(doc.steps[1].data.from);
    expect(((await deployment()).spec.template.spec.containers[0]!.env ?? []).map((e) => e.name)).not.toContain('VERSION_MARK');
    expect(await image()).toBe('registry.example.com/api:1.0.0');
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
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
    // MicroTime: six fractional digits, as the real server requires.
    const now = new Date().toISOString().replace(/Z$/, '000Z');
    await sb.kube.put({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'runbook-deployment-app', namespace: sb.namespace },
      spec: { holderIdentity: 'alice@laptop run 20261129T030000-beef', leaseDurationSeconds: 60, acquireTime: now, renewTime: now },
    } as KubeObject);
    try {
      const r = await cli(['app', 'scale', '--replicas', '4']);
      expect(r.code, r.stderr).toBe(6);
      expect(r.stderr).toMatch(/held by alice@laptop run 20261129T030000-beef since/);
      expect((await deployment()).spec.replicas).toBe(3);
    } finally {
      await sb.kube.remove('leases', sb.namespace, 'runbook-deployment-app');
    }
  });
});
