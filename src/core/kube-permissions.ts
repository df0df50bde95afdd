// The Kubernetes RBAC each client call needs: declarations, so the engine and `runbook rbac` can use
// them without loading the client.

/** One RBAC permission: a verb on a resource (and subresource) of an API group. */
export interface KubePermission {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  /** Cluster-scoped (nodes): granted by a ClusterRole, not the namespace's Role. */
  cluster?: boolean;
  /** In this namespace, whatever the client's is (a Role there grants it). */
  namespace?: string;
}

const apps = (verb: string, subresource?: string): KubePermission => ({
  verb,
  group: 'apps',
  resource: 'deployments',
  ...(subresource ? { subresource } : {}),
});
const core = (verb: string, resource: string, subresource?: string): KubePermission => ({ verb, group: '', resource, ...(subresource ? { subresource } : {}) });
const hpa = (verb: string): KubePermission => ({ verb, group: 'autoscaling', resource: 'horizontalpodautoscalers' });
const lease = (verb: string): KubePermission => ({ verb, group: 'coordination.k8s.io', resource: 'leases' });
const node = (verb: string): KubePermission => ({ verb, group: '', resource: 'nodes', cluster: true });
const configmap = (verb: string): KubePermission => core(verb, 'configmaps');

/**
 * What each KubeClient call needs from RBAC. `runbook rbac` and the permission preflight are
 * derived from this and from each procedure's `kube` declaration; src/clients/kube.ts has the
 * compiler check that the table names every call of the client and nothing else, and tests run
 * with declarations enforced, so neither can drift from the code.
 */
export const KUBE_PERMISSIONS = {
  getDeployment: [apps('get')],
  patchDeployment: [apps('patch')],
  scaleDeployment: [apps('patch', 'scale')],
  watchDeployment: [apps('list'), apps('watch')],
  listPods: [core('list', 'pods')],
  listReplicaSets: [{ verb: 'list', group: 'apps', resource: 'replicasets' }],
  readPodLog: [core('get', 'pods', 'log')],
  streamPodLog: [core('get', 'pods', 'log')],
  findHpasFor: [hpa('list')],
  createHpa: [hpa('create')],
  patchHpaSpec: [hpa('patch')],
  deleteHpa: [hpa('delete')],
  listHpas: [hpa('list')],
  listEvents: [core('list', 'events')],
  recordEvent: [core('create', 'events')],
  getNode: [node('get')],
  listNodes: [node('list')],
  // A node's change is recorded as an Event, which for a cluster-scoped object lives in `default`.
  patchNode: [node('patch'), { ...core('create', 'events'), namespace: 'default' }],
  getPod: [core('get', 'pods')],
  getSecretKeys: [core('get', 'secrets')],
  getConfigMapKeys: [core('get', 'configmaps')],
  listPodMetrics: [{ verb: 'list', group: 'metrics.k8s.io', resource: 'pods' }],
  getLease: [lease('get')],
  createLease: [lease('create')],
  updateLease: [lease('update')],
  deleteLease: [lease('delete')],
  whoAmI: [{ verb: 'create', group: 'authentication.k8s.io', resource: 'selfsubjectreviews', cluster: true }],
  getConfigMap: [configmap('get')],
  listConfigMaps: [configmap('list')],
  createConfigMap: [configmap('create')],
  patchConfigMap: [configmap('patch')],
  deleteConfigMap: [configmap('delete')],
  watchConfigMap: [configmap('list'), configmap('watch')],
  // A WebSocket upgrade is a GET, authorized as `get`; since Kubernetes 1.35 the API server also
  // checks `create` (as for SPDY's POST), so both are needed on old and new clusters alike.
  execInPod: [core('get', 'pods', 'exec'), core('create', 'pods', 'exec')],
  portForward: [core('get', 'pods', 'portforward'), core('create', 'pods', 'portforward')],
} satisfies Record<string, KubePermission[]>;

/** The KubeClient calls a procedure can declare (everything but its identity fields). */
export type KubeMethod = keyof typeof KUBE_PERMISSIONS;

/** The calls that change an object the procedures manage: each one is recorded as an Event on it (src/clients/kube-audit.ts). */
export const AUDITED_METHODS: KubeMethod[] = ['patchDeployment', 'scaleDeployment', 'createHpa', 'patchHpaSpec', 'deleteHpa', 'patchNode'];

/** The lock's calls, added to every procedure that takes one (a takeover is recorded as an Event on the Lease). */
export const LOCK_METHODS: KubeMethod[] = ['getLease', 'createLease', 'updateLease', 'deleteLease', 'recordEvent'];

export function permissionsOf(methods: readonly KubeMethod[]): KubePermission[] {
  const seen = new Map<string, KubePermission>();
  for (const m of methods) {
    const needs: readonly KubePermission[] = KUBE_PERMISSIONS[m];
    for (const p of needs) seen.set(`${p.verb} ${p.group}/${p.resource}/${p.subresource ?? ''} ${p.namespace ?? ''}`, p);
  }
  return [...seen.values()];
}

export function describePermission(p: KubePermission, namespace: string): string {
  const res = `${p.resource}${p.subresource ? `/${p.subresource}` : ''}${p.group ? `.${p.group}` : ''}`;
  return `${p.verb} ${res}${p.cluster ? ' (cluster-wide)' : ` in namespace ${p.namespace ?? namespace}`}`;
}
