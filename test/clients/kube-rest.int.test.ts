/**
 * The SDK-free read path against the real control plane: every read it serves gives what the SDK
 * adapter gives for the same objects (dates as Dates, the same fields), errors say the same, and a
 * kubeconfig it does not fully understand is left to the SDK.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiError, type KubeClient } from '../../src/clients/kube.js';
import { KubeAdapter } from '../../src/clients/kube-adapter.js';
import { createKubeClient, directTarget } from '../../src/clients/kube-rest.js';
import { tempDir } from '../support/cli.js';
import { startKube, type KubeHarness } from '../support/cluster/index.js';

let kube: KubeHarness;
let dir: string;
let kubeconfig: string;
let fast: KubeClient;
let sdk: KubeClient;

/** The SDK's objects without the attributes it sets to undefined (absent from the wire). */
function defined(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(defined);
  if (v instanceof Date || typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => [k, defined(x)]),
  );
}

const failure = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KubeApiError);
  return e as KubeApiError;
};

beforeAll(async () => {
  kube = await startKube({ namespace: 'kube-rest', nodes: 1 });
  dir = tempDir('kube-rest-');
  kubeconfig = join(dir, 'kubeconfig');
  await kube.writeKubeconfig(kubeconfig);
  // A label and an annotation named like date fields stay strings: they are anyone's names.
  await kube.seedDeployment({ name: 'app', replicas: 2, labels: { app: 'app', time: 'noon' }, annotations: { startTime: '2020-01-01T00:00:00Z' } });
  await kube.create({
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: 'app', namespace: kube.namespace },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'app' },
      minReplicas: 2,
      maxReplicas: 4,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
    },
  });
  const target = { kubeconfig, namespace: kube.namespace };
  fast = await createKubeClient(target, {});
  sdk = await createKubeClient(target, { RUNBOOK_KUBE_SDK_ONLY: '1' });
}, 120_000);
afterAll(async () => {
  fast?.close();
  sdk?.close();
  await kube?.close();
});

describe('reads without the SDK', () => {
  it('takes the direct path for a token kubeconfig, and the SDK when told to', () => {
    expect(fast).not.toBeInstanceOf(KubeAdapter);
    expect(sdk).toBeInstanceOf(KubeAdapter);
    expect(fast.server).toBe(sdk.server);
    expect(fast.context).toBe(sdk.context);
  });

  it('every read gives what the SDK gives for the same objects', async () => {
    const pods = await sdk.listPods('app=app');
    expect(pods.length).toBe(2);
    const node = kube.nodes[0];
    const pairs: Array<[string, (c: KubeClient) => Promise<unknown>]> = [
      ['getDeployment', (c) => c.getDeployment('app')],
      ['listPods', (c) => c.listPods('app=app')],
      ['listReplicaSets', (c) => c.listReplicaSets('app=app')],
      ['listHpas', (c) => c.listHpas()],
      ['findHpasFor', (c) => c.findHpasFor('app')],
      ['listEvents', (c) => c.listEvents()],
      ['getPod', (c) => c.getPod(pods[0].metadata!.name!)],
      ['getNode', (c) => c.getNode(node)],
      ['listNodes', (c) => c.listNodes(`kubernetes.io/hostname=${node}`)],
    ];
    for (const [what, read] of pairs) {
      const [mine, theirs] = await Promise.all([read(fast), read(sdk)]);
      expect(mine, what).toMatchObject(defined(theirs) as object);
    }
    const d = await fast.getDeployment('app');
    expect(d.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(d.status?.conditions?.[0]?.lastTransitionTime).toBeInstanceOf(Date);
    expect(d.metadata?.annotations?.startTime).toBe('2020-01-01T00:00:00Z');
    expect(d.spec?.template.metadata?.labels?.time).toBe('noon');
    const events = await fast.listEvents();
    expect(events.length).toBeGreaterThan(0);
  });

  it('a missing object: null where the SDK adapter gives null, the same 404 error where it throws', async () => {
    expect(await fast.getPod('no-such-pod')).toBeNull();
    expect(await fast.getNode('no-such-node')).toBeNull();
    const mine = await failure(fast.getDeployment('no-such-app'));
    const theirs = await failure(sdk.getDeployment('no-such-app'));
    expect(mine.status).toBe(404);
    expect(mine.reason).toBe('NotFound');
    expect(mine.message).toBe(theirs.message);
  });

  it('an unreachable server: the same error as the SDK adapter', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const file = join(dir, 'closed.kubeconfig');
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(kube.caPem).toString('base64') } }],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    const target = { kubeconfig: file, namespace: 'default' };
    const a = await createKubeClient(target, {});
    const b = await createKubeClient(target, { RUNBOOK_KUBE_SDK_ONLY: '1' });
    const mine = await failure(a.listPods());
    const theirs = await failure(b.listPods());
    expect(mine.message).toBe(theirs.message);
    expect(mine.message).toMatch(/cannot reach the Kubernetes API at .*ECONNREFUSED/);
    a.close();
    b.close();
  });

  it('parallel reads share keep-alive connections, and a write still works through the SDK', async () => {
    const mine = await createKubeClient({ kubeconfig, namespace: kube.namespace }, {});
    const before = kube.connections();
    await Promise.all([mine.getDeployment('app'), mine.listHpas(), mine.listPods('app=app')]);
    await mine.listReplicaSets();
    await mine.getDeployment('app');
    expect(kube.connections() - before).toBeLessThanOrEqual(3);
    const patched = await mine.patchDeployment('app', { metadata: { annotations: { 'runbook.dev/touched': 'yes' } } }, 'merge');
    expect(patched.metadata?.annotations?.['runbook.dev/touched']).toBe('yes');
    mine.close();
  });
});

describe('kubeconfigs left to the SDK', () => {
  const write = (name: string, user: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const file = join(dir, name);
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1', ...extra } }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    return file;
  };

  it('exec plugins, auth providers, basic auth, impersonation and proxies', async () => {
    const cases = [
      write('exec', { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'aws', args: ['eks', 'get-token'] } }),
      write('provider', { 'auth-provider': { name: 'oidc', config: {} } }),
      write('basic', { username: 'a', password: 'b' }),
      write('as', { token: 't', as: 'someone' }),
      write('proxy', { token: 't' }, { 'proxy-url': 'http://proxy:3128' }),
    ];
    for (const file of cases) expect(await directTarget({ kubeconfig: file, namespace: 'default' }, {}), file).toBeNull();
    expect(await directTarget({ kubeconfig: write('token', { token: 't' }), namespace: 'default' }, {})).toMatchObject({ context: 'x', token: 't' });
  });

  it('a context the kubeconfig lacks: the SDK adapter says so (a config error, nothing contacted)', async () => {
    const err = await createKubeClient({ kubeconfig, context: 'nope', namespace: 'default' }, {}).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/kube context "nope" is not in the kubeconfig/);
  });
});
