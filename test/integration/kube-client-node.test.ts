/**
 * Drives the fake Kubernetes API server (test/support/kube) with
 * @kubernetes/client-node 1.x, the client runbook itself uses.
 */
import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type V1Deployment,
} from '@kubernetes/client-node';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiServer, type Deployment, type KubeApiServer, type Pod } from '../support/kube/index.js';

const NS = 'prod';
let kube: KubeApiServer;
let dir: string;
let kc: KubeConfig;
let apps: AppsV1Api;
let core: CoreV1Api;
let coordination: CoordinationV1Api;

const stored = (name = 'app'): Deployment => {
  const d = kube.store.get<Deployment>('deployments', NS, name);
  if (!d) throw new Error(`deployment ${name} missing`);
  return d;
};

/** The Status body of a failed call (client-node passes the raw body text). */
function statusOf(err: unknown): { code: number; reason?: string; message?: string } {
  if (!(err instanceof ApiException)) throw err;
  const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
  return { code: err.code, ...(body as { reason?: string; message?: string }) };
}

async function failure(p: Promise<unknown>): Promise<{ code: number; reason?: string; message?: string }> {
  try {
    await p;
  } catch (err) {
    return statusOf(err);
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  [kube, dir] = await Promise.all([startKubeApiServer({ namespace: NS, readyDelayMs: 20 }), mkdtemp(join(tmpdir(), 'kube-client-node-'))]);
  await kube.writeKubeconfig(join(dir, 'kubeconfig'));
  kc = new KubeConfig();
  kc.loadFromFile(join(dir, 'kubeconfig'));
  apps = kc.makeApiClient(AppsV1Api);
  core = kc.makeApiClient(CoreV1Api);
  coordination = kc.makeApiClient(CoordinationV1Api);
  await kube.seedDeployment({ namespace: NS, name: 'app', replicas: 2, containers: [{ name: 'web', image: 'registry.example.com/web:1.4.2', env: [{ name: 'MODE', value: 'prod' }] }] });
});

afterAll(async () => {
  await kube?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('@kubernetes/client-node against the test API server', () => {
  it('loads the kubeconfig (HTTPS, test CA) and reads a deployment', async () => {
    expect(kc.getCurrentContext()).toBe('test');
    expect(kc.getContextObject('test')?.namespace).toBe(NS);
    const d = await apps.readNamespacedDeployment({ name: 'app', namespace: NS });
    expect(d.metadata?.uid).toBe(stored().metadata.uid);
    expect(d.spec?.replicas).toBe(2);
    expect(d.status?.readyReplicas).toBe(2);
    expect(d.spec?.template.spec?.containers[0]?.image).toBe('registry.example.com/web:1.4.2');
    expect(d.metadata?.creationTimestamp).toBeInstanceOf(Date);

    const missing = await failure(apps.readNamespacedDeployment({ name: 'nope', namespace: NS }));
    expect(missing).toMatchObject({ code: 404, reason: 'NotFound', message: 'deployments.apps "nope" not found' });
  });

  it('strategic merge patch merges containers/env by name; dryRun=All stores nothing', async () => {
    const patch = { spec: { template: { spec: { containers: [{ name: 'web', env: [{ name: 'FEATURE_X', value: 'on' }] }] } } } };
    const opts = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

    kube.requests.length = 0;
    const dry = await apps.patchNamespacedDeployment({ name: 'app', namespace: NS, body: patch, dryRun: 'All' }, opts);
    expect(dry.spec?.template.spec?.containers[0]?.env).toEqual([
      { name: 'MODE', value: 'prod' },
      { name: 'FEATURE_X', value: 'on' },
    ]);
    expect(dry.metadata?.generation).toBe(2);
    expect(kube.requests).toMatchObject([{ method: 'PATCH', contentType: 'application/strategic-merge-patch+json', dryRun: true, status: 200 }]);
    expect(kube.mutations()).toEqual([]);
    expect(stored().spec.template.spec.containers[0]?.env).toEqual([{ name: 'MODE', value: 'prod' }]);
    expect(stored().metadata.generation).toBe(1);

    const real = await apps.patchNamespacedDeployment({ name: 'app', namespace: NS, body: patch }, opts);
    expect(real.metadata?.generation).toBe(2);
    expect(stored().spec.template.spec.containers[0]?.env).toEqual([
      { name: 'MODE', value: 'prod' },
      { name: 'FEATURE_X', value: 'on' },
    ]);
    expect(kube.mutations()).toHaveLength(1);
    await kube.waitForRollout(NS, 'app');
  });

  it('replace and patch the scale subresource', async () => {
    const scale = await apps.readNamespacedDeploymentScale({ name: 'app', namespace: NS });
    expect(scale.spec?.replicas).toBe(2);
    const staleVersion = scale.metadata?.resourceVersion ?? '';
    expect(staleVersion).toMatch(/^\d+$/);
    expect(scale.status?.selector).toBe('app=app');

    const replaced = await apps.replaceNamespacedDeploymentScale({
      name: 'app',
      namespace: NS,
      body: { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'app', namespace: NS }, spec: { replicas: 4 } },
    });
    expect(replaced.spec?.replicas).toBe(4);
    expect(stored().spec.replicas).toBe(4);

    const stale = await failure(
      apps.replaceNamespacedDeploymentScale({
        name: 'app',
        namespace: NS,
        body: { metadata: { name: 'app', namespace: NS, resourceVersion: staleVersion }, spec: { replicas: 9 } },
      }),
    );
    expect(stale).toMatchObject({ code: 409, reason: 'Conflict' });

    await kube.waitForRollout(NS, 'app');
    kube.controller.pause();
    const patched = await apps.patchNamespacedDeploymentScale(
      { name: 'app', namespace: NS, body: { spec: { replicas: 3 } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(patched.spec?.replicas).toBe(3);
    expect(stored().spec.replicas).toBe(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(kube.store.list('pods', { namespace: NS, labelSelector: 'app=app' })).toHaveLength(4);
    expect(stored().status?.observedGeneration).toBeLessThan(stored().metadata.generation ?? 0);
    kube.controller.resume();
    await kube.waitForRollout(NS, 'app');
    expect(kube.store.list('pods', { namespace: NS, labelSelector: 'app=app' })).toHaveLength(3);
  });

  it('lease create, then replace with a stale resourceVersion is a 409 Conflict', async () => {
    const created = await coordination.createNamespacedLease({
      namespace: NS,
      body: { metadata: { name: 'runbook-lock' }, spec: { holderIdentity: 'alice', leaseDurationSeconds: 30 } },
    });
    const rv1 = created.metadata?.resourceVersion;
    expect(rv1).toMatch(/^\d+$/);
    const dup = await failure(coordination.createNamespacedLease({ namespace: NS, body: { metadata: { name: 'runbook-lock' }, spec: {} } }));
    expect(dup).toMatchObject({ code: 409, reason: 'AlreadyExists' });

    const renewed = await coordination.replaceNamespacedLease({
      name: 'runbook-lock',
      namespace: NS,
      body: { ...created, spec: { ...created.spec, holderIdentity: 'alice', renewTime: new Date() } },
    });
    expect(Number(renewed.metadata?.resourceVersion)).toBeGreaterThan(Number(rv1));

    const stale = await failure(
      coordination.replaceNamespacedLease({ name: 'runbook-lock', namespace: NS, body: { ...created, spec: { ...created.spec, holderIdentity: 'bob' } } }),
    );
    expect(stale).toMatchObject({
      code: 409,
      reason: 'Conflict',
      message: 'Operation cannot be fulfilled on leases.coordination.k8s.io "runbook-lock": the object has been modified; please apply your changes to the latest version and try again',
    });
    expect(kube.store.get<{ spec: { holderIdentity: string } } & Pod>('leases', NS, 'runbook-lock')?.spec.holderIdentity).toBe('alice');
  });

  it('Watch with a fieldSelector sees MODIFIED events until the rollout completes', async () => {
    const events: Array<{ type: string; d: V1Deployment }> = [];
    const list = await apps.listNamespacedDeployment({ namespace: NS, fieldSelector: 'metadata.name=app' });
    const done = new Promise<void>((resolve, reject) => {
      void new Watch(kc)
        .watch(
          `/apis/apps/v1/namespaces/${NS}/deployments`,
          { fieldSelector: 'metadata.name=app', resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: V1Deployment) => {
            events.push({ type, d: obj });
            const s = obj.status;
            const complete =
              (s?.observedGeneration ?? 0) >= (obj.metadata?.generation ?? 0) &&
              s?.updatedReplicas === obj.spec?.replicas &&
              s?.replicas === obj.spec?.replicas &&
              s?.availableReplicas === obj.spec?.replicas &&
              events.some((e) => e.d.spec?.template.metadata?.annotations?.['runbook/restartedAt']);
            if (complete) resolve();
          },
          (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : undefined),
        )
        .then((ctrl) => done.finally(() => ctrl.abort()), reject);
    });
    await apps.patchNamespacedDeployment(
      { name: 'app', namespace: NS, body: { spec: { template: { metadata: { annotations: { 'runbook/restartedAt': '2025-01-01T00:00:00Z' } } } } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    await done;
    expect(events.every((e) => e.type === 'MODIFIED' && e.d.metadata?.name === 'app')).toBe(true);
    expect(events.length).toBeGreaterThan(3);
    expect(events.some((e) => (e.d.status?.updatedReplicas ?? 0) < 3 && (e.d.status?.observedGeneration ?? 0) === e.d.metadata?.generation)).toBe(true);
    const last = events.at(-1)?.d;
    expect(last?.status?.conditions?.find((c) => c.type === 'Progressing')?.reason).toBe('NewReplicaSetAvailable');
    expect(last?.metadata?.annotations?.['deployment.kubernetes.io/revision']).toBe('3');
    expect(kube.requests.some((r) => r.watch && r.query.fieldSelector === 'metadata.name=app' && r.query.resourceVersion === list.metadata?.resourceVersion)).toBe(true);
  });

  it('reads pod logs and lists pods by label selector', async () => {
    const pods = await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=app,pod-template-hash' });
    expect(pods.items).toHaveLength(3);
    expect(pods.items.every((p) => p.status?.phase === 'Running' && p.metadata?.ownerReferences?.[0]?.kind === 'ReplicaSet')).toBe(true);
    expect((await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=other' })).items).toEqual([]);

    const name = pods.items[0]?.metadata?.name ?? '';
    const defaultLog = await core.readNamespacedPodLog({ name, namespace: NS });
    expect(defaultLog).toContain('msg="starting web" image=registry.example.com/web:1.4.2');

    kube.setPodLogs(NS, name, ['a', 'b', 'c']);
    expect(await core.readNamespacedPodLog({ name, namespace: NS, tailLines: 2 })).toBe('b\nc\n');
    expect(await core.readNamespacedPodLog({ name, namespace: NS, container: 'web' })).toBe('a\nb\nc\n');
    const prev = await failure(core.readNamespacedPodLog({ name, namespace: NS, previous: true }));
    expect(prev).toMatchObject({ code: 400, message: `previous terminated container "web" in pod "${name}" not found` });
  });

  it('failPods crash-loop: the new revision crash-loops, previous logs are readable, old pods keep serving', async () => {
    kube.controller.failPods = (pod) => (pod.spec.containers.some((c) => c.image?.endsWith(':bad')) ? 'crash-loop' : undefined);
    kube.controller.crashLoopOptions = { exitCode: 137, reason: 'OOMKilled', previousLogs: ['allocating 4GiB', 'killed'] };
    try {
      await apps.patchNamespacedDeployment(
        { name: 'app', namespace: NS, body: { spec: { template: { spec: { containers: [{ name: 'web', image: 'registry.example.com/web:bad' }] } } } } },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
      const crashing = (): Pod[] =>
        kube.store.list<Pod>('pods', { namespace: NS, labelSelector: 'app=app' }).filter((p) => p.status?.containerStatuses?.[0]?.state.waiting?.reason === 'CrashLoopBackOff');
      await kube.waitFor(() => crashing().length === 1);
      const name = crashing()[0]?.metadata.name ?? '';
      expect(await core.readNamespacedPodLog({ name, namespace: NS, previous: true })).toBe('allocating 4GiB\nkilled\n');
      const pod = await core.readNamespacedPod({ name, namespace: NS });
      expect(pod.status?.containerStatuses?.[0]).toMatchObject({ ready: false, restartCount: 5, lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } } });
      const events = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name},reason=BackOff` });
      expect(events.items).toHaveLength(1);
      expect(events.items[0]?.type).toBe('Warning');
      expect(kube.rolloutComplete(NS, 'app')).toBe(false);
      expect(stored().status).toMatchObject({ replicas: 4, updatedReplicas: 1, availableReplicas: 3, unavailableReplicas: 1 });
    } finally {
      kube.controller.failPods = undefined;
      kube.controller.crashLoopOptions = {};
    }
  });

  it('injected faults: status codes and hanging requests', async () => {
    kube.faults.add({ method: 'GET', path: `/apis/apps/v1/namespaces/${NS}/deployments/app`, status: 503, times: 2 });
    expect(await failure(apps.readNamespacedDeployment({ name: 'app', namespace: NS }))).toMatchObject({ code: 503, reason: 'ServiceUnavailable' });
    expect(await failure(apps.readNamespacedDeployment({ name: 'app', namespace: NS }))).toMatchObject({ code: 503 });
    expect((await apps.readNamespacedDeployment({ name: 'app', namespace: NS })).metadata?.name).toBe('app');

    kube.faults.add({ path: /\/leases\/runbook-lock$/, hang: true });
    const hung = coordination.readNamespacedLease({ name: 'runbook-lock', namespace: NS });
    const outcome = await Promise.race([hung.then(() => 'answered', () => 'failed'), new Promise((r) => setTimeout(() => r('still waiting'), 200))]);
    expect(outcome).toBe('still waiting');
    expect(kube.requests.at(-1)).toMatchObject({ path: `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/runbook-lock`, status: 0 });
    hung.catch(() => undefined); // settled by close() in afterAll
  });
});
