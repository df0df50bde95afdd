/**
 * Holds the fake Kubernetes API server (test/support/kube) honest: drives the
 * real kubectl against it for every operation runbook uses and asserts on both
 * kubectl's output and the server's stored state.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiServer, type Deployment, type KubeApiServer, type KubeObject, type NodeObject, type Pod, type ReplicaSet } from '../support/kube/index.js';

const KUBECTL = process.env.KUBECTL ?? 'kubectl';
const NS = 'prod';

let kube: KubeApiServer;
let dir: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl against the test server; never throws (assert on `code`). */
function kubectl(...args: string[]): Promise<Result> {
  const argv = ['--kubeconfig', join(dir, 'kubeconfig'), '--cache-dir', join(dir, 'cache'), '--request-timeout=10s', ...args];
  return new Promise((resolve) => {
    execFile(KUBECTL, argv, { timeout: 40_000, env: { ...process.env, KUBECONFIG: '' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function ok(...args: string[]): Promise<string> {
  const r = await kubectl(...args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function json<T = { items: KubeObject[] }>(...args: string[]): Promise<T> {
  return JSON.parse(await ok(...args, '-o', 'json')) as T;
}

const deployment = (name = 'app'): Deployment => {
  const d = kube.store.get<Deployment>('deployments', NS, name);
  if (!d) throw new Error(`deployment ${name} missing`);
  return d;
};
const replicaSets = (name = 'app'): ReplicaSet[] =>
  kube.store.list<ReplicaSet>('replicasets', { namespace: NS }).filter((rs) => rs.metadata.ownerReferences?.some((r) => r.name === name));
const revision = (o: KubeObject): string | undefined => o.metadata.annotations?.['deployment.kubernetes.io/revision'];
const rsByRevision = (rev: number, name = 'app'): ReplicaSet | undefined => replicaSets(name).find((rs) => revision(rs) === String(rev));
const env = (name = 'app'): unknown => deployment(name).spec.template.spec.containers[0]?.env;

beforeAll(async () => {
  [kube, dir] = await Promise.all([startKubeApiServer({ namespace: NS, readyDelayMs: 20 }), mkdtemp(join(tmpdir(), 'kube-conformance-'))]);
  await kube.writeKubeconfig(join(dir, 'kubeconfig'));
  await Promise.all([
    kube.seedDeployment({ namespace: NS, name: 'app', replicas: 2 }),
    kube.seedDeployment({ namespace: NS, name: 'stuck', replicas: 1, progressDeadlineSeconds: 2 }),
  ]);
  kube.seedSecret(NS, 'db-credentials', { password: 's3cret' });
  kube.seedConfigMap(NS, 'app-config', { LOG_LEVEL: 'info' });
  kube.store.put({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'runbook-lock', namespace: NS },
    spec: { holderIdentity: 'alice', leaseDurationSeconds: 30 },
  });
});

afterAll(async () => {
  await kube?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kubectl against the test API server', () => {
  it('reads deployments, replicasets and pods (discovery, short names, -o json)', async () => {
    const deploys = await json<{ items: Deployment[] }>('get', 'deploy');
    expect(deploys.items.map((d) => d.metadata.name)).toEqual(['app', 'stuck']);
    const d = deploys.items[0];
    expect(d?.spec.replicas).toBe(2);
    expect(d?.status).toMatchObject({ replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2, observedGeneration: 1 });
    expect(d?.status?.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Available', 'True', 'MinimumReplicasAvailable'],
      ['Progressing', 'True', 'NewReplicaSetAvailable'],
    ]);

    const rs = await json<{ items: ReplicaSet[] }>('get', 'rs', '-l', 'app=app');
    expect(rs.items).toHaveLength(1);
    const hash = rs.items[0]?.metadata.labels?.['pod-template-hash'];
    expect(hash).toMatch(/^[a-z0-9]{6,10}$/);
    expect(rs.items[0]?.metadata.name).toBe(`app-${hash}`);
    expect(revision(rs.items[0] as ReplicaSet)).toBe('1');
    expect(rs.items[0]?.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Deployment', name: 'app', uid: d?.metadata.uid, controller: true });

    const pods = await json<{ items: Pod[] }>('get', 'po', '-l', 'app=app');
    expect(pods.items).toHaveLength(2);
    for (const p of pods.items) {
      expect(p.metadata.name).toMatch(new RegExp(`^app-${hash}-[a-z0-9]{5}$`));
      expect(p.status?.phase).toBe('Running');
      expect(p.status?.containerStatuses?.[0]).toMatchObject({ name: 'app', ready: true, restartCount: 0, started: true });
      expect(p.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      expect(p.status?.podIP).toMatch(/^10\.244\./);
      expect(p.spec.nodeName).toMatch(/^node-\d$/);
    }

    const table = await ok('get', 'deployments');
    expect(table).toMatch(/^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\napp\s+2\/2\s+2\s+2\s+\d+s\nstuck\s+1\/1\s+1\s+1\s+\d+s\n$/);
  });

  it('reads nodes, secrets, configmaps, leases, events and hpa lists', async () => {
    type Data = KubeObject & { data: Record<string, string> };
    type Ev = KubeObject & { reason: string; message: string; involvedObject: { kind: string; name: string } };
    const [nodes, secrets, cm, leases, hpas, events, eventTable] = await Promise.all([
      json<{ items: NodeObject[] }>('get', 'nodes'),
      json<{ items: Data[] }>('get', 'secrets'),
      json<Data>('get', 'cm', 'app-config'),
      json<{ items: Array<KubeObject & { spec: { holderIdentity: string } }> }>('get', 'leases'),
      json('get', 'hpa'),
      json<{ items: Ev[] }>('get', 'events'),
      ok('get', 'events'),
    ]);
    expect(nodes.items.map((n) => n.metadata.name)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(Buffer.from(secrets.items[0]?.data['password'] ?? '', 'base64').toString()).toBe('s3cret');
    expect(cm).toMatchObject({ kind: 'ConfigMap', data: { LOG_LEVEL: 'info' } });
    expect(leases.items[0]?.spec.holderIdentity).toBe('alice');
    expect(hpas.items).toEqual([]);
    const scaling = events.items.filter((e) => e.reason === 'ScalingReplicaSet' && e.involvedObject.name === 'app');
    expect(scaling[0]?.involvedObject).toMatchObject({ kind: 'Deployment', name: 'app' });
    expect(scaling[0]?.message).toMatch(/^Scaled up replica set app-\w+ to 2 from 0$/);
    expect(events.items.some((e) => e.reason === 'Started' && e.involvedObject.kind === 'Pod')).toBe(true);
    expect(eventTable).toMatch(/ScalingReplicaSet\s+deployment\/app\s+Scaled up replica set/);
  });

  it('rollout status times out when new pods never become ready', async () => {
    // Only the 'stuck' deployment's pods fail, so the other tests run on while its progress deadline (2s) expires.
    kube.controller.failPods = (pod) => (pod.metadata.labels?.['app'] === 'stuck' ? 'never-ready' : undefined);
    await ok('set', 'env', 'deployment/stuck', 'BROKEN=1');
    const r = await kubectl('rollout', 'status', 'deployment/stuck', '--timeout=700ms');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/Waiting for deployment "stuck" rollout to finish: 1 old replicas are pending termination/);
    expect(r.stderr).toMatch(/timed out waiting for the condition/);
    expect(kube.rolloutComplete(NS, 'stuck')).toBe(false);
    expect(kube.store.get<Deployment>('deployments', NS, 'stuck')?.status).toMatchObject({ replicas: 2, updatedReplicas: 1, availableReplicas: 1, unavailableReplicas: 1 });
  });

  it('scale (merge patch on /scale) and rollout status', async () => {
    kube.requests.length = 0;
    expect(await ok('scale', 'deployment/app', '--replicas=3')).toBe('deployment.apps/app scaled\n');
    expect(kube.mutations().map((r) => [r.method, r.path, r.contentType])).toEqual([
      ['PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/app/scale`, 'application/merge-patch+json'],
    ]);
    expect(deployment().spec.replicas).toBe(3);
    expect(await ok('rollout', 'status', 'deployment/app', '--timeout=30s')).toMatch(/deployment "app" successfully rolled out\n$/);
    expect(kube.rolloutComplete(NS, 'app')).toBe(true);
    expect(kube.store.list('pods', { namespace: NS, labelSelector: 'app=app' })).toHaveLength(3);
    expect(replicaSets()).toHaveLength(1);
  });

  it('scale and set env with --dry-run=server change nothing', async () => {
    const before = deployment();
    kube.requests.length = 0;
    expect(await ok('scale', 'deployment/app', '--replicas=7', '--dry-run=server')).toBe('deployment.apps/app scaled (server dry run)\n');
    const out = await json<Deployment>('set', 'env', 'deployment/app', 'DRY=1', '--dry-run=server');
    expect(out.spec.template.spec.containers[0]?.env).toEqual([{ name: 'DRY', value: '1' }]);
    expect(kube.requests.filter((r) => r.method === 'PATCH').map((r) => [r.dryRun, r.status])).toEqual([
      [true, 200],
      [true, 200],
    ]);
    expect(kube.mutations()).toEqual([]);
    const after = deployment();
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.spec).toEqual(before.spec);
    expect(replicaSets()).toHaveLength(1);
  });

  it('rollout restart creates revision 2 and rollout status waits for it', async () => {
    kube.requests.length = 0;
    expect(await ok('rollout', 'restart', 'deployment/app')).toBe('deployment.apps/app restarted\n');
    const patch = kube.mutations()[0];
    expect(patch?.contentType).toBe('application/strategic-merge-patch+json');
    const restartedAt = deployment().spec.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt'];
    expect(restartedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(deployment().metadata.generation).toBe(3);

    // Hold the controller until kubectl is watching, so the wait is observed even on a slow machine.
    kube.controller.pause();
    const pending = ok('rollout', 'status', 'deployment/app', '--timeout=30s');
    try {
      // waitFor re-checks on store changes only, and the paused controller makes none: poll the log.
      for (let i = 0; i < 400 && !kube.requests.some((q) => q.watch && q.path.includes('/deployments')); i++) await new Promise((r) => setTimeout(r, 50));
    } finally {
      kube.controller.resume();
    }
    const status = await pending;
    expect(status).toMatch(/Waiting for deployment "app" rollout to finish/);
    expect(status).toMatch(/deployment "app" successfully rolled out\n$/);
    const d = deployment();
    expect(d.status).toMatchObject({ observedGeneration: 3, replicas: 3, updatedReplicas: 3, availableReplicas: 3 });
    expect(d.status?.unavailableReplicas).toBeUndefined();
    expect(revision(d)).toBe('2');
    const rev2 = rsByRevision(2);
    expect(rev2?.spec.replicas).toBe(3);
    expect(rev2?.spec.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']).toBe(restartedAt);
    expect(rsByRevision(1)?.spec.replicas).toBe(0);
    const pods = kube.store.list<Pod>('pods', { namespace: NS, labelSelector: 'app=app' });
    expect(pods.map((p) => p.metadata.labels?.['pod-template-hash'])).toEqual(Array(3).fill(rev2?.metadata.labels?.['pod-template-hash']));
  });

  it('set env FOO=bar and FOO- (strategic merge by name; unset re-uses revision 2)', async () => {
    expect(await ok('set', 'env', 'deployment/app', 'FOO=bar')).toBe('deployment.apps/app env updated\n');
    expect(env()).toEqual([{ name: 'FOO', value: 'bar' }]);
    await ok('rollout', 'status', 'deployment/app', '--timeout=30s');
    expect(revision(deployment())).toBe('3');

    const rev2Name = rsByRevision(2)?.metadata.name;
    expect(await ok('set', 'env', 'deployment/app', 'FOO-')).toBe('deployment.apps/app env updated\n');
    expect(env()).toBeUndefined();
    await ok('rollout', 'status', 'deployment/app', '--timeout=30s');
    const reused = rsByRevision(4);
    expect(reused?.metadata.name).toBe(rev2Name);
    expect(reused?.metadata.annotations?.['deployment.kubernetes.io/revision-history']).toBe('2');
    expect(replicaSets()).toHaveLength(3);
  });

  it('rollout history lists revisions and shows a revision template', async () => {
    const history = await ok('rollout', 'history', 'deployment/app');
    expect(history).toMatch(/^deployment\.apps\/app \nREVISION\s+CHANGE-CAUSE\n1\s+<none>\n3\s+<none>\n4\s+<none>\n\n$/);
    const rev3 = await ok('rollout', 'history', 'deployment/app', '--revision=3');
    expect(rev3).toMatch(/FOO:\s+bar/);
  });

  it('rollout undo (json patch of the template) and --to-revision', async () => {
    kube.requests.length = 0;
    expect(await ok('rollout', 'undo', 'deployment/app')).toBe('deployment.apps/app rolled back\n');
    expect(kube.mutations().map((r) => [r.method, r.contentType])).toEqual([['PATCH', 'application/json-patch+json']]);
    expect(env()).toEqual([{ name: 'FOO', value: 'bar' }]);
    await ok('rollout', 'status', 'deployment/app', '--timeout=30s');
    expect(revision(deployment())).toBe('5');
    expect(rsByRevision(3)).toBeUndefined();

    const rev1Name = rsByRevision(1)?.metadata.name;
    expect(await ok('rollout', 'undo', 'deployment/app', '--to-revision=1')).toBe('deployment.apps/app rolled back\n');
    await ok('rollout', 'status', 'deployment/app', '--timeout=30s');
    const d = deployment();
    expect(revision(d)).toBe('6');
    expect(d.spec.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']).toBeUndefined();
    expect(env()).toBeUndefined();
    expect(rsByRevision(6)?.metadata.name).toBe(rev1Name);
    expect(rsByRevision(6)?.status?.readyReplicas).toBe(3);
    expect(await ok('rollout', 'history', 'deployment/app')).toMatch(/\n4\s+<none>\n5\s+<none>\n6\s+<none>\n/);

    const missing = await kubectl('rollout', 'undo', 'deployment/app', '--to-revision=99');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/unable to find specified revision 99/);
  });

  it('autoscale creates an HPA readable as autoscaling/v2', async () => {
    expect(await ok('autoscale', 'deployment', 'app', '--min=2', '--max=10', '--cpu-percent=70')).toBe('horizontalpodautoscaler.autoscaling/app autoscaled\n');
    const stored = kube.store.get('hpa', NS, 'app');
    expect(stored).toMatchObject({
      apiVersion: 'autoscaling/v2',
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'app' },
        minReplicas: 2,
        maxReplicas: 10,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
      },
    });
    const hpa = await json<KubeObject>('get', 'hpa', 'app');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    const v1 = await json<KubeObject>('get', 'horizontalpodautoscalers.v1.autoscaling', 'app');
    expect(v1).toMatchObject({ apiVersion: 'autoscaling/v1', spec: { targetCPUUtilizationPercentage: 70 } });
    const again = await kubectl('autoscale', 'deployment', 'app', '--min=2', '--max=10');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/AlreadyExists.*"app" already exists/);
  });

  it('logs deployment/app --tail=5 and logs <pod>', async () => {
    const pods = kube.store.list<Pod>('pods', { namespace: NS, labelSelector: 'app=app' });
    const lines = Array.from({ length: 10 }, (_, i) => `line ${i + 1}`);
    for (const p of pods) kube.setPodLogs(NS, p.metadata.name, lines);
    expect(await ok('logs', 'deployment/app', '--tail=5')).toBe('line 6\nline 7\nline 8\nline 9\nline 10\n');
    const pod = pods[0]?.metadata.name ?? '';
    expect(await ok('logs', pod)).toBe(`${lines.join('\n')}\n`);
    const logRequest = kube.requests.filter((r) => r.path.endsWith('/log')).at(-1);
    expect(logRequest?.path).toBe(`/api/v1/namespaces/${NS}/pods/${pod}/log`);

    kube.controller.crashLoop(NS, pod, { restartCount: 4, previousLogs: ['boom: out of memory'] });
    expect(await ok('logs', pod, '--previous')).toBe('boom: out of memory\n');
    const crashed = await json<Pod>('get', 'pod', pod);
    expect(crashed.status?.containerStatuses?.[0]).toMatchObject({
      ready: false,
      restartCount: 4,
      state: { waiting: { reason: 'CrashLoopBackOff' } },
      lastState: { terminated: { exitCode: 1, reason: 'Error' } },
    });
    expect(await ok('get', 'pod', pod)).toMatch(/0\/1\s+CrashLoopBackOff\s+4\s/);
  });

  it('cordon and label a node', async () => {
    expect(await ok('cordon', 'node-1')).toBe('node/node-1 cordoned\n');
    expect(kube.store.get<NodeObject>('nodes', undefined, 'node-1')?.spec?.unschedulable).toBe(true);
    expect(await ok('label', 'nodes', 'node-1', 'quarantine=true')).toBe('node/node-1 labeled\n');
    expect(kube.store.get('nodes', undefined, 'node-1')?.metadata.labels?.quarantine).toBe('true');
    expect(await ok('get', 'nodes')).toMatch(/node-1\s+Ready,SchedulingDisabled/);
    const patches = kube.mutations().filter((r) => r.path === '/api/v1/nodes/node-1');
    expect(patches.map((r) => r.contentType)).toEqual(['application/strategic-merge-patch+json', 'application/merge-patch+json']);
  });

  it('top pods and nodes (metrics.k8s.io)', async () => {
    const pods = kube.store.list<Pod>('pods', { namespace: NS, labelSelector: 'app=app' });
    kube.metrics.setPodUsage(NS, pods[0]?.metadata.name ?? '', { app: { cpu: '123m', memory: '45Mi' } });
    expect(await ok('top', 'pods', '-l', 'app=app')).toMatch(new RegExp(`${pods[0]?.metadata.name ?? ''}\\s+123m\\s+45Mi`));
    expect(await ok('top', 'nodes')).toMatch(/^NAME\s+CPU\(cores\)\s+CPU%?\(?%?\)?\s+MEMORY/);
  });

  it('delete the crash-looping pod: the replicaset replaces it and the deployment recovers', async () => {
    expect(kube.rolloutComplete(NS, 'app')).toBe(false);
    const crashing = kube.store.list<Pod>('pods', { namespace: NS, labelSelector: 'app=app' }).filter((p) => p.status?.containerStatuses?.[0]?.state.waiting);
    expect(crashing).toHaveLength(1);
    const victim = crashing[0]?.metadata.name ?? '';
    expect(await ok('delete', 'pod', victim)).toBe(`pod "${victim}" deleted\n`);
    await kube.waitFor(() => kube.store.list<Pod>('pods', { namespace: NS, labelSelector: 'app=app' }).filter((p) => p.status?.containerStatuses?.[0]?.ready).length >= 2);
    const names = kube.store.list('pods', { namespace: NS, labelSelector: 'app=app' }).map((p) => p.metadata.name);
    expect(names).toHaveLength(3);
    expect(names).not.toContain(victim);
    await kube.waitForRollout(NS, 'app');
  });

  it('server-side validation: dry run of an invalid update is 422 Invalid, nothing stored', async () => {
    await kube.waitForRollout(NS, 'app');
    const before = deployment().metadata.resourceVersion;
    kube.requests.length = 0;
    const bad = await kubectl('patch', 'deployment', 'app', '--dry-run=server', '-p', JSON.stringify({ spec: { template: { spec: { containers: [{ name: 'app', resources: { limits: { cpu: 'lots' } } }] } } } }));
    expect(bad.code).toBe(1);
    // kubectl re-renders Invalid errors from the Status details ("The <Kind> ... is invalid").
    expect(bad.stderr).toMatch(/The Deployment "app" is invalid: spec\.template\.spec\.containers\[0\]\.resources\.limits\[cpu\]: Invalid value: "lots"/);
    const negative = await kubectl('patch', 'deployment', 'app', '--subresource=scale', '--type=merge', '--dry-run=server', '-p', '{"spec":{"replicas":-1}}');
    expect(negative.code).toBe(1);
    expect(negative.stderr).toMatch(/spec\.replicas: Invalid value: -1: must be greater than or equal to 0/);
    expect(kube.requests.at(-1)).toMatchObject({ method: 'PATCH', status: 422, dryRun: true });
    expect(deployment().metadata.resourceVersion).toBe(before);
    expect(kube.mutations()).toEqual([]);
    const badName = await kubectl('create', 'configmap', 'Bad_Name', '--from-literal=a=b');
    expect(badName.stderr).toMatch(/Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);
  });

  it('injected faults surface as kubectl errors and change nothing', async () => {
    kube.faults.add({ method: 'PATCH', path: `/apis/apps/v1/namespaces/${NS}/deployments/app/scale`, status: 500, message: 'etcd is on fire' });
    const r = await kubectl('scale', 'deployment/app', '--replicas=5');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/etcd is on fire/);
    expect(deployment().spec.replicas).toBe(3);
    expect(await ok('scale', 'deployment/app', '--replicas=3')).toBe('deployment.apps/app scaled\n');
  });

  it('rollout status reports the exceeded progress deadline of the stuck rollout', async () => {
    const stuck = (): Deployment | undefined => kube.store.get<Deployment>('deployments', NS, 'stuck');
    await kube.waitFor(() => stuck()?.status?.conditions?.some((c) => c.reason === 'ProgressDeadlineExceeded') === true, { timeoutMs: 5000 });
    const exceeded = await kubectl('rollout', 'status', 'deployment/stuck', '--timeout=5s');
    expect(exceeded.code).toBe(1);
    expect(exceeded.stderr).toMatch(/deployment "stuck" exceeded its progress deadline/);
    expect(stuck()?.status?.conditions?.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'False', reason: 'ProgressDeadlineExceeded' });
    kube.controller.failPods = undefined;
  });
});
