/**
 * The calls two-person approval stands on, against the real control plane: who the API server says
 * a client is, ConfigMaps in a namespace of their own with optimistic writes, and a watch that sees
 * a change as it happens.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiError, type KubeClient, type V1ConfigMap } from '../../src/clients/kube.js';
import { createKubeClient } from '../../src/clients/kube-adapter.js';
import { tempDir } from '../support/cli.js';
import { startKube, type KubeHarness } from '../support/cluster/index.js';

let kube: KubeHarness;
let dir: string;
let client: KubeClient;
/** A second namespace the client is not bound to, standing for the approvals namespace. */
let approvals: string;

beforeAll(async () => {
  kube = await startKube({ namespace: 'kube-cm', nodes: 0 });
  dir = tempDir('kube-cm-');
  await kube.writeKubeconfig(join(dir, 'kubeconfig'));
  client = await createKubeClient({ kubeconfig: join(dir, 'kubeconfig'), namespace: kube.namespace }, {});
  approvals = `${kube.namespace}-approvals`;
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: approvals } });
});
afterAll(async () => {
  if (approvals) await kube?.remove('namespaces', undefined, approvals);
  await kube?.close();
});

const status = (e: unknown) => (e instanceof KubeApiError ? e.status : undefined);

describe('whoAmI (SelfSubjectReview)', () => {
  it('names each minted user and its groups, as the API server authenticated them', async () => {
    const alice = await createKubeClient(
      { kubeconfig: kube.userKubeconfig(join(dir, 'alice.kubeconfig'), { name: 'alice', groups: ['approvers'] }), namespace: kube.namespace },
      {},
    );
    const bob = await createKubeClient({ kubeconfig: kube.userKubeconfig(join(dir, 'bob.kubeconfig'), { name: 'bob' }), namespace: kube.namespace }, {});
    const a = await alice.whoAmI();
    const b = await bob.whoAmI();
    expect(a.username).toBe('alice');
    expect(a.groups).toContain('approvers');
    expect(a.groups).toContain('system:authenticated');
    expect(b.username).toBe('bob');
    expect(b.groups).not.toContain('approvers');
    expect((await client.whoAmI()).username).toBe('operator');
  });
});

describe('ConfigMaps in another namespace', () => {
  it('create, get, list by label; a second create is 409; a missing one is null', async () => {
    const cm: V1ConfigMap = { metadata: { name: 'req-1', labels: { 'runbook.dev/approval': 'request' } }, data: { state: 'pending' } };
    const made = await client.createConfigMap(approvals, cm);
    expect(made.metadata?.namespace).toBe(approvals);
    expect(made.metadata?.resourceVersion).toBeTruthy();
    expect(status(await client.createConfigMap(approvals, cm).catch((e: unknown) => e))).toBe(409);
    expect((await client.getConfigMap(approvals, 'req-1'))?.data).toEqual({ state: 'pending' });
    expect(await client.getConfigMap(approvals, 'nope')).toBeNull();
    // Not in the client's own namespace.
    expect(await client.getConfigMap(kube.namespace, 'req-1')).toBeNull();
    await client.createConfigMap(approvals, { metadata: { name: 'other' }, data: {} });
    expect((await client.listConfigMaps(approvals, 'runbook.dev/approval=request')).map((c) => c.metadata?.name)).toEqual(['req-1']);
    expect((await client.listConfigMaps(approvals)).map((c) => c.metadata?.name).sort()).toEqual(['kube-root-ca.crt', 'other', 'req-1']);
  });

  it('a dry-run create persists nothing', async () => {
    await client.createConfigMap(approvals, { metadata: { name: 'dry' }, data: { a: '1' } }, { dryRun: true });
    expect(await kube.get('configmaps', approvals, 'dry')).toBeUndefined();
  });

  it('patch with the version read succeeds; with a stale version answers 409 and changes nothing', async () => {
    const made = await client.createConfigMap(approvals, { metadata: { name: 'req-2' }, data: { state: 'pending' } });
    const rv = made.metadata!.resourceVersion!;
    const approved = await client.patchConfigMap(approvals, 'req-2', { data: { state: 'approved', by: 'alice' } }, { resourceVersion: rv });
    expect(approved.data).toEqual({ state: 'approved', by: 'alice' });
    const err = await client.patchConfigMap(approvals, 'req-2', { data: { state: 'denied' } }, { resourceVersion: rv }).catch((e: unknown) => e);
    expect(status(err)).toBe(409);
    expect(((await kube.get('configmaps', approvals, 'req-2'))?.data as Record<string, string> | undefined)?.state).toBe('approved');
    // Without a version the patch is unconditional; null removes a key (merge patch).
    const plain = await client.patchConfigMap(approvals, 'req-2', { data: { by: null } });
    expect(plain.data).toEqual({ state: 'approved' });
  });

  it('delete with a stale version is refused (409); with the current one, it is gone', async () => {
    const made = await client.createConfigMap(approvals, { metadata: { name: 'req-3' }, data: {} });
    const moved = await client.patchConfigMap(approvals, 'req-3', { data: { x: '1' } });
    expect(status(await client.deleteConfigMap(approvals, 'req-3', made.metadata!.resourceVersion).catch((e: unknown) => e))).toBe(409);
    expect(await client.getConfigMap(approvals, 'req-3')).not.toBeNull();
    await client.deleteConfigMap(approvals, 'req-3', moved.metadata!.resourceVersion);
    expect(await client.getConfigMap(approvals, 'req-3')).toBeNull();
    expect(status(await client.deleteConfigMap(approvals, 'req-3').catch((e: unknown) => e))).toBe(404);
  });

  it('watch sees the current object, then a patch made by someone else within a second', async () => {
    await client.createConfigMap(approvals, { metadata: { name: 'req-4' }, data: { state: 'pending' } });
    const seen: string[] = [];
    const ctrl = new AbortController();
    let sawAt = 0;
    const watching = client.watchConfigMap(
      approvals,
      'req-4',
      (ev) => {
        seen.push(`${ev.type} ${ev.object.data?.state}`);
        if (ev.object.data?.state === 'approved') {
          sawAt = Date.now();
          return true;
        }
      },
      ctrl.signal,
    );
    await kube.waitFor(() => seen.length > 0, { what: 'the first watch event', timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    const patchedAt = Date.now();
    await kube.patch('configmaps', approvals, 'req-4', { data: { state: 'approved' } });
    const timer = setTimeout(() => ctrl.abort(), 10_000);
    await watching;
    clearTimeout(timer);
    expect(seen[0]).toBe('ADDED pending');
    expect(seen.at(-1)).toBe('MODIFIED approved');
    expect(sawAt - patchedAt).toBeLessThan(1000);
  });

  it('a watch ends when its signal aborts; a missing ConfigMap is 404', async () => {
    await client.createConfigMap(approvals, { metadata: { name: 'req-5' }, data: {} });
    const ctrl = new AbortController();
    const watching = client.watchConfigMap(approvals, 'req-5', () => undefined, ctrl.signal);
    setTimeout(() => ctrl.abort(), 300);
    await expect(watching).resolves.toBeUndefined();
    expect(status(await client.watchConfigMap(approvals, 'nope', () => true, new AbortController().signal).catch((e: unknown) => e))).toBe(404);
  });

  it('cannotDo asks about the namespace given, not the client’s', async () => {
    const rbacNs = approvals;
    const kc = kube.userKubeconfig(join(dir, 'carol.kubeconfig'), { name: 'carol' });
    await kube.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'cm-reader', namespace: rbacNs },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    });
    await kube.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'cm-reader', namespace: rbacNs },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cm-reader' },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'carol' }],
    });
    const carol = await createKubeClient({ kubeconfig: kc, namespace: kube.namespace }, {});
    const get = { verb: 'get', group: '', resource: 'configmaps' };
    await kube.waitFor(async () => (await carol.cannotDo([get], rbacNs)).length === 0, { what: 'the RoleBinding to take effect', timeoutMs: 10_000 });
    expect(await carol.cannotDo([get])).toEqual([get]);
    expect(await carol.cannotDo([{ ...get, namespace: rbacNs }])).toEqual([]);
    expect(await carol.cannotDo([{ verb: 'create', group: 'authentication.k8s.io', resource: 'selfsubjectreviews', cluster: true }])).toEqual([]);
  });
});

describe('errors name the request', () => {
  it('a refused write says the verb, the object and the namespace, on one line', async () => {
    const weak = await createKubeClient({ kubeconfig: kube.userKubeconfig(join(dir, 'dave.kubeconfig'), { name: 'dave' }), namespace: kube.namespace }, {});
    const err = (await weak.patchConfigMap(approvals, 'req-1', { data: { state: 'approved' } }).catch((e: unknown) => e)) as KubeApiError;
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.status).toBe(403);
    expect(err.message).toContain(`Kubernetes API at ${kube.info.server}: PATCH configmaps/req-1 in namespace ${approvals}: `);
    expect(err.message).toMatch(/User "dave" cannot patch resource "configmaps"/);
    expect(err.message).not.toContain('\n');
    const scale = (await weak.scaleDeployment('app', 1, { dryRun: true }).catch((e: unknown) => e)) as KubeApiError;
    expect(scale.message).toContain(`PATCH (dry run) deployments/app/scale in namespace ${kube.namespace}: `);
    const node = (await weak.getNode('no-such-node').catch((e: unknown) => e)) as KubeApiError;
    expect(node.message).toMatch(/: GET nodes\/no-such-node: .*cannot get resource "nodes"/);
  });
});
