/**
 * The Kubernetes client adapter and the Lease lock against the real control plane: the behaviours a
 * home-made server got wrong (MicroTime, optimistic concurrency, watch after compaction, HPAs by
 * target, 403 wording, kubeconfig merging and exec credential plugins).
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiError, type KubeClient, type V1Deployment } from '../../src/clients/kube.js';
import { createKubeClient } from '../../src/clients/kube-adapter.js';
import { acquireLock } from '../../src/core/lock.js';
import { LockHeldError } from '../../src/core/errors.js';
import { runCli, tempDir } from '../support/cli.js';
import { compactEtcd, startControlPlane, type ControlPlane } from '../support/cluster/control-plane.js';
import { startKube, type KubeHarness } from '../support/cluster/index.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';

let kube: KubeHarness;
let dir: string;
let client: KubeClient;

const now = () => new Date();

beforeAll(async () => {
  kube = await startKube({ namespace: 'kube-adapter' });
  dir = tempDir('kube-adapter-');
  await kube.writeKubeconfig(join(dir, 'kubeconfig'));
  client = await createKubeClient({ kubeconfig: join(dir, 'kubeconfig'), namespace: kube.namespace }, {});
  await kube.seedDeployment({ name: 'app', replicas: 2 });
});
afterAll(async () => {
  await kube?.close();
});

describe('the Lease lock on a real API server', () => {
  it('writes MicroTime the server accepts; a second holder is refused; release deletes only its own version', async () => {
    const lock = await acquireLock(client, 'runbook-test-lock', { operator: 'alice@laptop', runId: 'r1' }, now);
    const stored = await kube.get<{ spec: { acquireTime: string; holderIdentity: string } } & import('../support/cluster/index.js').KubeObject>(
      'leases',
      kube.namespace,
      'runbook-test-lock',
    );
    expect(stored?.spec.holderIdentity).toBe('alice@laptop run r1');
    expect(stored?.spec.acquireTime).toMatch(/\.\d{6}Z$/);
    await expect(acquireLock(client, 'runbook-test-lock', { operator: 'bob@desk', runId: 'r2' }, now)).rejects.toThrow(LockHeldError);
    await lock.release();
    expect(await kube.get('leases', kube.namespace, 'runbook-test-lock')).toBeUndefined();
  });

  it('two runs racing for an expired lease: exactly one wins (the other gets 409 and exit 6)', async () => {
    const past = () => new Date(Date.now() - 10 * 60_000);
    const stale = await acquireLock(client, 'runbook-race', { operator: 'crashed@host', runId: 'r0' }, past);
    void stale; // never released: it expired ten minutes ago
    const results = await Promise.allSettled([
      acquireLock(client, 'runbook-race', { operator: 'alice@laptop', runId: 'a' }, now),
      acquireLock(client, 'runbook-race', { operator: 'bob@desk', runId: 'b' }, now),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(lost.reason).toBeInstanceOf(LockHeldError);
    for (const r of results) if (r.status === 'fulfilled') await r.value.release();
  });

  it('a lease taken away mid-run is noticed at the next renewal: lost aborts with a clear reason', async () => {
    const lock = await acquireLock(client, 'runbook-stolen', { operator: 'alice@laptop', runId: 'r1' }, now, { renewEveryMs: 200 });
    await kube.patch('leases', kube.namespace, 'runbook-stolen', { spec: { holderIdentity: 'mallory run x' } });
    await kube.waitFor(() => lock.lost.aborted, { what: 'lost signal', timeoutMs: 5000 });
    expect(String((lock.lost.reason as Error).message)).toMatch(/lost the lock runbook-stolen: mallory run x holds it now/);
    await lock.release();
    // Someone else's lease is not deleted by our release.
    expect(await kube.get('leases', kube.namespace, 'runbook-stolen')).toBeDefined();
  });
});

describe('errors as the real server words them', () => {
  it('403 names the user, verb, resource and namespace, and the server', async () => {
    const kc = kube.userKubeconfig(join(dir, 'nobody.kubeconfig'), { name: 'nobody' });
    const weak = await createKubeClient({ kubeconfig: kc, namespace: kube.namespace }, {});
    const err = await weak.getDeployment('app').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).status).toBe(403);
    expect((err as Error).message).toContain(kube.info.server);
    expect((err as Error).message).toMatch(/User "nobody" cannot get resource "deployments" in API group "apps" in the namespace "kube-adapter-/);
  });
});

describe('kubeconfig as kubectl reads it', () => {
  it('KUBECONFIG with several files: clusters from one, users and contexts from another', async () => {
    const admin = kube.userKubeconfig(join(dir, 'split-source.kubeconfig'), { name: 'operator', groups: ['system:masters'], context: 'split' });
    const full = (await import('yaml')).parse((await import('node:fs')).readFileSync(admin, 'utf8'));
    writeFileSync(
      join(dir, 'a.yaml'),
      stringify({ apiVersion: 'v1', kind: 'Config', clusters: full.clusters, users: [], contexts: [], 'current-context': 'split' }),
    );
    writeFileSync(join(dir, 'b.yaml'), stringify({ apiVersion: 'v1', kind: 'Config', clusters: [], users: full.users, contexts: full.contexts }));
    const merged = await createKubeClient({ namespace: kube.namespace }, { KUBECONFIG: `${join(dir, 'a.yaml')}:${join(dir, 'b.yaml')}` });
    expect(merged.context).toBe('split');
    expect((await merged.getDeployment('app')).metadata?.name).toBe('app');
  });

  it("no namespace in the config: the kubeconfig context's namespace, as kubectl uses it", async () => {
    const cfg = join(dir, 'runbook.yaml');
    writeFileSync(cfg, stringify({ default: 'k', environments: { k: { kubernetes: { kubeconfig: join(dir, 'kubeconfig'), deployment: 'app' } } } }));
    const r = await runCli(['app', 'scaling', '--json'], { env: { RUNBOOK_CONFIG: cfg } });
    // deployment/app exists only in the harness's namespace (the context's): "default" would be a 404.
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).procedure).toBe('app scaling');
  });

  it('an exec credential plugin (as EKS uses) supplies the token; a failing plugin is one clear error', async () => {
    await kube.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'exec-user', namespace: kube.namespace } });
    await kube.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'exec-user-view', namespace: kube.namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'ServiceAccount', name: 'exec-user', namespace: kube.namespace }],
    } as never);
    const admin = new (await import('../support/cluster/index.js')).AdminClient(kube.info);
    const tr = await admin.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${kube.namespace}/serviceaccounts/exec-user/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3600 },
    });
    const plugin = join(dir, 'get-token.mjs');
    writeFileSync(
      plugin,
      `#!${process.execPath}\nif (process.env.FAIL_PLUGIN) { console.error('plugin: not logged in'); process.exit(1); }\nconsole.log(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: ${JSON.stringify(tr.status.token)} } }));\n`,
    );
    chmodSync(plugin, 0o755);
    const cfg = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: kube.info.server, 'certificate-authority-data': Buffer.from(kube.caPem).toString('base64') } }],
      users: [{ name: 'u', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, interactiveMode: 'Never' } } }],
      contexts: [{ name: 'eks', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'eks',
    };
    writeFileSync(join(dir, 'exec.yaml'), stringify(cfg));
    const viaPlugin = await createKubeClient({ kubeconfig: join(dir, 'exec.yaml'), namespace: kube.namespace }, {});
    expect((await viaPlugin.getDeployment('app')).metadata?.name).toBe('app');
    // view cannot scale: the real RBAC answer, not "keeps failing".
    const denied = await viaPlugin.scaleDeployment('app', 3).catch((e: unknown) => e);
    expect((denied as KubeApiError).status).toBe(403);
    expect((denied as Error).message).toMatch(/cannot patch resource "deployments\/scale"/);
  });
});

describe('watching a rollout on a real server', () => {
  let private_: ControlPlane;
  let k: KubeHarness;
  beforeAll(async () => {
    // Watches served straight from etcd, so compaction turns an old resourceVersion into 410 Gone.
    private_ = await startControlPlane({ watchCache: false, nodes: ['w-1'] });
    k = await startKube({ namespace: 'watch', controlPlane: private_, nodes: 1 });
  }, 180_000);
  afterAll(async () => {
    await k?.close();
  });

  const configFor = (deployment: string, kubeconfig: string) => {
    const cfg = join(dir, `runbook-${deployment}.yaml`);
    writeFileSync(
      cfg,
      stringify({ default: 'w', environments: { w: { kubernetes: { kubeconfig, namespace: k.namespace, deployment }, rollout: { timeout: '20s' } } } }),
    );
    return { RUNBOOK_CONFIG: cfg };
  };

  it('a stalled controller-manager: the rollout times out, the scale is put back, nothing hangs', async () => {
    await k.seedDeployment({ name: 'stall', replicas: 1 });
    const kc = join(dir, 'stall.kubeconfig');
    await k.writeKubeconfig(kc);
    k.pauseControllers();
    let r;
    try {
      r = await runCli(['app', 'scale', '--replicas', '2', '--yes', '--rollout-timeout', '3s'], { env: configFor('stall', kc) });
    } finally {
      k.resumeControllers();
    }
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/rollout of deployment\/stall not complete after 3(\.0)?s/);
    const d = await k.get<import('../support/cluster/index.js').Deployment>('deployments', k.namespace, 'stall');
    expect(d?.spec.replicas).toBe(1);
  });

  it("selectors with matchExpressions: pods that match only the labels are not the deployment's", async () => {
    await k.create({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'expr', namespace: k.namespace },
      spec: {
        replicas: 2,
        minReadySeconds: 1,
        selector: { matchLabels: { app: 'expr' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] },
        template: { metadata: { labels: { app: 'expr', tier: 'web' } }, spec: { containers: [{ name: 'web', image: 'registry.example.com/web:1' }] } },
      },
    } as never);
    await k.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'expr-decoy', namespace: k.namespace, labels: { app: 'expr', tier: 'db' } },
      spec: { containers: [{ name: 'db', image: 'registry.example.com/db:1' }] },
    } as never);
    await k.waitForRollout('expr', { timeoutMs: 30_000 });
    const kc = join(dir, 'expr.kubeconfig');
    await k.writeKubeconfig(kc);
    const r = await runCli(['app', 'scaling', '--json'], { env: configFor('expr', kc) });
    expect(r.code, r.stderr).toBe(0);
    const pods = JSON.stringify(JSON.parse(r.stdout).steps);
    expect(pods).not.toContain('expr-decoy');
    expect((pods.match(/"name":"expr-[a-z0-9]+-[a-z0-9]+"/g) ?? []).length).toBe(2);
    // minReadySeconds: the rollout counts pods only once they have been ready that long.
    const s = await runCli(['app', 'scale', '--replicas', '3', '--yes'], { env: configFor('expr', kc) });
    expect(s.code, s.stderr).toBe(0);
    const d = await k.get<import('../support/cluster/index.js').Deployment>('deployments', k.namespace, 'expr');
    expect(d?.status?.availableReplicas).toBe(3);
  });

  it('relists after 410 Gone (a compacted resourceVersion) and still sees the rollout finish', async () => {
    await k.seedDeployment({ name: 'web', replicas: 1 });
    const kc = join(dir, 'watch.kubeconfig');
    await k.writeKubeconfig(kc);
    const c = await createKubeClient({ kubeconfig: kc, namespace: k.namespace }, {});
    // Hold the first watch request back while the cluster moves on and etcd is compacted past it.
    k.faults.add({ method: 'GET', path: `/apis/apps/v1/namespaces/${k.namespace}/deployments`, query: { watch: 'true' }, delayMs: 2500 });
    const seen: V1Deployment[] = [];
    const done = c.watchDeployment(
      'web',
      (ev) => {
        seen.push(ev.object);
        return (ev.object.spec?.replicas ?? 0) === 2 && (ev.object.status?.availableReplicas ?? 0) === 2;
      },
      AbortSignal.timeout(30_000),
    );
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 3; i++) await k.patch('deployments', k.namespace, 'web', { metadata: { annotations: { bump: String(i) } } });
    const compacted = await compactEtcd(private_.info);
    await new Promise((r) => setTimeout(r, 2500));
    await k.patch('deployments', k.namespace, 'web', { spec: { replicas: 2 } });
    await done;
    const onDeployments = k.requests.filter((q) => q.method === 'GET' && q.path.endsWith('/deployments') && q.query.fieldSelector === 'metadata.name=web');
    const first = onDeployments.findIndex((q) => q.watch);
    // The held-back watch asked for a version etcd no longer has (410), and the client listed again
    // before watching from the new list's version.
    expect(Number(onDeployments[first]!.query.resourceVersion)).toBeLessThan(compacted);
    const after = onDeployments.slice(first + 1);
    expect(after[0]?.watch).toBe(false);
    expect(Number(after.find((q) => q.watch)?.query.resourceVersion)).toBeGreaterThanOrEqual(compacted);
    expect(seen.at(-1)?.status?.availableReplicas).toBe(2);
  });
});

describe('rollouts that can never finish fail at once, not at the timeout', () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await startSandbox({ parts: ['kubernetes'] });
  });
  afterAll(async () => {
    await sb?.stop();
  });
  const cli = (argv: string[]) => runCli(argv, { env: sb.env });

  it('new pods in ImagePullBackOff: app restart fails naming the pod and reason, and says so quickly', async () => {
    await sb.kube.failPods('image-pull');
    const t0 = Date.now();
    const r = await cli(['app', 'restart', '--yes', '--rollout-timeout', '60s']);
    const took = Date.now() - t0;
    await sb.kube.failPods(undefined);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the new pods cannot start: pod app-[a-z0-9-]+ container api: ImagePullBackOff/);
    expect(took).toBeLessThan(30_000);
    // Recover: a fresh rollout with healthy pods.
    await sb.kube.kubectl(['rollout', 'restart', 'deployment/app']);
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
  });

  it('a ResourceQuota that forbids more pods: the rollout fails on ReplicaFailure with the quota message', async () => {
    await sb.kube.create({
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: { name: 'no-more-pods', namespace: sb.namespace },
      spec: { hard: { pods: '3' } },
    } as never);
    await sb.kube.waitFor(
      async () =>
        Boolean(
          (await sb.kube.get<{ status?: { hard?: object } } & import('../support/cluster/index.js').KubeObject>('resourcequotas', sb.namespace, 'no-more-pods'))
            ?.status?.hard,
        ),
      { what: 'quota status' },
    );
    const r = await cli(['app', 'scale', '--replicas', '5', '--yes']);
    await sb.kube.remove('resourcequotas', sb.namespace, 'no-more-pods');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/pods cannot be created: .*exceeded quota: no-more-pods/);
  });

  it('a paused deployment: the rollout wait says so and how to resume, instead of waiting it out', async () => {
    await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { paused: true } });
    const r = await cli(['app', 'restart', '--yes']);
    await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { paused: false } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the deployment is paused \(resume it with: kubectl rollout resume deployment\/app/);
  });
});

describe('connections', () => {
  it('the calls of one command share a keep-alive connection (a TLS handshake once, not per request); close lets go of it', async () => {
    const mine = await createKubeClient({ kubeconfig: join(dir, 'kubeconfig'), namespace: kube.namespace }, {});
    const before = kube.connections();
    await mine.getDeployment('app');
    await mine.listPods('app=app');
    await mine.listReplicaSets();
    await Promise.all([mine.getDeployment('app'), mine.findHpasFor('app')]);
    await mine.getLease('no-such-lease');
    // Six requests, at most two of them at once: two connections at most (client-node alone opened one per request).
    expect(kube.connections() - before).toBeLessThanOrEqual(2);
    mine.close();
  });
});
