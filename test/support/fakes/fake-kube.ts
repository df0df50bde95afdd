// An in-memory KubeClient for fast unit tests of procedure logic (plans, gates, compensation order).
// It is not a Kubernetes: anything that depends on how a real API server behaves (patch semantics,
// validation, watches, RBAC, controllers) is tested against the real control plane in the *.int.test.ts files.
import type {
  CoreV1Event,
  KubeClient,
  KubeEventRecord,
  KubePermission,
  LeaseRecord,
  PodMetrics,
  V1Node,
  V1ConfigMap,
  V1Deployment,
  V1Pod,
  V1ReplicaSet,
  V2HorizontalPodAutoscaler,
  WatchEvent,
  WriteOptions,
  PatchType,
} from '../../../src/clients/kube.js';
import { KubeApiError } from '../../../src/clients/kube.js';
import type { ClientFactories } from '../../../src/clients/index.js';
import { fetchHttpClient } from '../../../src/clients/http.js';

/**
 * An in-memory KubeClient for fast unit tests of the engine and the procedures' logic. Rollouts
 * complete at once. The real API server in test/support/kube is what integration tests use.
 */
export class FakeKube implements KubeClient {
  readonly namespace = 'production';
  readonly context = 'fake';
  readonly server = 'https://fake.invalid';
  deployments = new Map<string, V1Deployment>();
  hpas = new Map<string, V2HorizontalPodAutoscaler>();
  leases = new Map<string, LeaseRecord>();
  private leaseVersion = 0;
  mutations: string[] = [];
  /** Extra pods (by name), listed after the deployment's synthesized ones. */
  pods = new Map<string, V1Pod>();
  events: CoreV1Event[] = [];
  /** Secret and ConfigMap key names by object name. */
  secrets = new Map<string, string[]>();
  configMaps = new Map<string, string[]>();
  /** Usage per pod; pods missing here have no metrics. `null` makes the metrics API unavailable. */
  podMetrics: Map<string, PodMetrics> | null = new Map();
  /** Logs of previous container instances, keyed "pod/container" (or "pod"). */
  previousLogs = new Map<string, string>();
  /** Cluster nodes by name (node-1..3, schedulable, unlabelled). */
  nodes = new Map<string, V1Node>(['node-1', 'node-2', 'node-3'].map((n) => [n, { metadata: { name: n, labels: { 'kubernetes.io/hostname': n } }, spec: {} }]));
  private failures: Array<{ op: string; times: number; status: number }> = [];

  constructor(replicas = 4) {
    this.deployments.set('app', {
      metadata: {
        name: 'app',
        namespace: this.namespace,
        uid: 'uid-app',
        generation: 1,
        resourceVersion: '1',
        annotations: { 'deployment.kubernetes.io/revision': '1' },
      },
      spec: {
        replicas,
        selector: { matchLabels: { app: 'api' } },
        template: { metadata: { labels: { app: 'api' } }, spec: { containers: [{ name: 'api', image: 'api:1', env: [{ name: 'MODE', value: 'normal' }] }] } },
      },
      status: { observedGeneration: 1, replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas },
    });
  }

  /** The next `times` calls of operation `op` (e.g. "scaleDeployment") fail with `status`. */
  failNext(op: string, times = 1, status = 500): void {
    this.failures.push({ op, times, status });
  }

  private check(op: string): void {
    const f = this.failures.find((x) => x.op === op && x.times > 0);
    if (f) {
      f.times -= 1;
      throw new KubeApiError(`Kubernetes API: injected failure on ${op} (${f.status})`, f.status);
    }
  }

  private dep(name: string): V1Deployment {
    const d = this.deployments.get(name);
    if (!d) throw new KubeApiError(`Kubernetes API: deployments.apps "${name}" not found (404)`, 404, 'NotFound');
    return d;
  }

  private settle(d: V1Deployment): void {
    const r = d.spec?.replicas ?? 0;
    d.metadata!.generation = (d.metadata!.generation ?? 0) + 1;
    d.status = { observedGeneration: d.metadata!.generation, replicas: r, updatedReplicas: r, readyReplicas: r, availableReplicas: r };
  }

  async getDeployment(name: string) {
    this.check('getDeployment');
    return structuredClone(this.dep(name));
  }

  async patchDeployment(name: string, patch: unknown, type: PatchType, opts?: WriteOptions) {
    this.check('patchDeployment');
    const d = structuredClone(this.dep(name));
    if (type === 'json') {
      for (const op of patch as Array<{ op: string; path: string; value?: unknown }>) {
        if (op.op === 'replace' && op.path === '/spec/template') d.spec!.template = op.value as never;
        else if (op.op === 'add' || op.op === 'replace') {
          const m = /^\/spec\/template\/spec\/containers\/(\d+)\/(env|resources)$/.exec(op.path);
          if (m) (d.spec!.template.spec!.containers[Number(m[1])] as unknown as Record<string, unknown>)[m[2]] = op.value;
        } else if (op.op === 'remove') {
          const m = /^\/spec\/template\/spec\/containers\/(\d+)\/(env|resources)$/.exec(op.path);
          if (m) delete (d.spec!.template.spec!.containers[Number(m[1])] as unknown as Record<string, unknown>)[m[2]];
        }
      }
    } else {
      const p = patch as {
        spec?: { template?: { metadata?: { annotations?: Record<string, string> }; spec?: { containers?: Array<Record<string, unknown>> } } };
      };
      const ann = p.spec?.template?.metadata?.annotations;
      if (ann) d.spec!.template.metadata = { ...d.spec!.template.metadata, annotations: { ...(d.spec!.template.metadata?.annotations ?? {}), ...ann } };
      for (const c of p.spec?.template?.spec?.containers ?? []) {
        const target = d.spec!.template.spec!.containers.find((x) => x.name === c.name) as unknown as Record<string, unknown>;
        if (!target) throw new KubeApiError(`Kubernetes API: container ${String(c.name)} not found (422)`, 422);
        if (c.resources) target.resources = c.resources;
        if (Array.isArray(c.env)) {
          let env = [...((target.env as Array<{ name: string; value?: string }>) ?? [])];
          for (const e of c.env as Array<{ name: string; value?: string; $patch?: string }>) {
            env = env.filter((x) => x.name !== e.name);
            if (e.$patch !== 'delete') env.push({ name: e.name, value: e.value });
          }
          target.env = env;
        }
      }
    }
    if (opts?.dryRun) return d;
    this.mutations.push(`patch deployment/${name}`);
    this.settle(d);
    this.deployments.set(name, d);
    return structuredClone(d);
  }

  async scaleDeployment(name: string, replicas: number, opts?: WriteOptions) {
    this.check('scaleDeployment');
    const d = this.dep(name);
    if (!opts?.dryRun) {
      this.mutations.push(`scale deployment/${name} ${replicas}`);
      d.spec!.replicas = replicas;
      this.settle(d);
    }
    return { spec: { replicas } };
  }

  async watchDeployment(name: string, onEvent: (ev: WatchEvent<V1Deployment>) => boolean | void, signal: AbortSignal) {
    this.check('watchDeployment');
    while (!signal.aborted) {
      if (onEvent({ type: 'MODIFIED', object: structuredClone(this.dep(name)) }) === true) return;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async listPods(): Promise<V1Pod[]> {
    this.check('listPods');
    const d = this.dep('app');
    const synthesized: V1Pod[] = Array.from({ length: d.spec?.replicas ?? 0 }, (_, i) => ({
      metadata: { name: `app-${i}`, labels: { app: 'api' } },
      spec: { containers: [{ name: 'api' }], nodeName: 'node-1' },
      status: { phase: 'Running', containerStatuses: [{ name: 'api', ready: true, restartCount: 0, image: 'api:1', imageID: '' }] },
    }));
    return [...synthesized, ...structuredClone([...this.pods.values()])];
  }

  async getPod(name: string) {
    this.check('getPod');
    return (await this.listPods()).find((p) => p.metadata?.name === name) ?? null;
  }

  async getSecretKeys(name: string) {
    this.check('getSecretKeys');
    return this.secrets.get(name) ?? null;
  }

  async getConfigMapKeys(name: string) {
    this.check('getConfigMapKeys');
    return this.configMaps.get(name) ?? null;
  }

  async listPodMetrics() {
    this.check('listPodMetrics');
    if (!this.podMetrics) throw new KubeApiError('Kubernetes API: the server could not find the requested resource (404)', 404, 'NotFound');
    return structuredClone([...this.podMetrics.values()]);
  }

  async listReplicaSets(): Promise<V1ReplicaSet[]> {
    return [];
  }

  async readPodLog(pod: string, opts: { container?: string; tailLines?: number; previous?: boolean } = {}) {
    if (opts.previous) {
      const text = this.previousLogs.get(`${pod}/${opts.container ?? ''}`) ?? this.previousLogs.get(pod);
      if (text === undefined) throw new KubeApiError(`Kubernetes API: previous terminated container in pod "${pod}" not found (400)`, 400, 'BadRequest');
      return text;
    }
    return `${pod} started\n${pod} ready\n`;
  }

  async findHpasFor(deployment: string) {
    this.check('findHpasFor');
    return [...this.hpas.values()]
      .filter((h) => h.spec?.scaleTargetRef?.kind === 'Deployment' && h.spec.scaleTargetRef.name === deployment)
      .map((h) => structuredClone(h));
  }

  async createHpa(hpa: V2HorizontalPodAutoscaler, opts?: WriteOptions) {
    this.check('createHpa');
    if (!opts?.dryRun) {
      this.mutations.push(`create hpa/${hpa.metadata?.name}`);
      this.hpas.set(hpa.metadata!.name!, structuredClone(hpa));
    }
    return hpa;
  }

  async patchHpaSpec(name: string, spec: V2HorizontalPodAutoscaler['spec'], opts?: WriteOptions) {
    this.check('patchHpaSpec');
    const cur = this.hpas.get(name);
    if (!cur) throw new KubeApiError(`Kubernetes API: horizontalpodautoscalers.autoscaling "${name}" not found (404)`, 404, 'NotFound');
    const next = { ...structuredClone(cur), spec: { ...cur.spec!, ...structuredClone(spec) } };
    if (!opts?.dryRun) {
      this.mutations.push(`patch hpa/${name}`);
      this.hpas.set(name, next);
    }
    return next;
  }

  async deleteHpa(name: string) {
    this.mutations.push(`delete hpa/${name}`);
    this.hpas.delete(name);
  }

  async listHpas() {
    return [...this.hpas.values()];
  }

  async listEvents(fieldSelector?: string) {
    const name = /involvedObject\.name=([^,]+)/.exec(fieldSelector ?? '')?.[1];
    return structuredClone(this.events.filter((e) => name === undefined || e.involvedObject.name === name));
  }

  /** Events written through recordEvent, in order (kept apart from `events`, what listEvents answers, and from `mutations`). */
  recorded: KubeEventRecord[] = [];

  async recordEvent(ev: KubeEventRecord) {
    this.check('recordEvent');
    this.recorded.push(structuredClone(ev));
  }

  async streamPodLog(pod: string, out: NodeJS.WritableStream, opts: { container?: string; previous?: boolean } = {}) {
    this.check('streamPodLog');
    const text = await this.readPodLog(pod, opts);
    await new Promise<void>((resolve) => out.end(text, () => resolve()));
  }

  async getNode(name: string) {
    this.check('getNode');
    return structuredClone(this.nodes.get(name) ?? null);
  }

  async listNodes() {
    return [...this.nodes.values()].map((n) => structuredClone(n));
  }

  /** Node patches as the tool sends them: spec.unschedulable (null removes) and metadata.labels (null removes). */
  async patchNode(name: string, patch: unknown, _type: PatchType, opts?: WriteOptions) {
    this.check('patchNode');
    const cur = this.nodes.get(name);
    if (!cur) throw new KubeApiError(`Kubernetes API: nodes "${name}" not found (404)`, 404, 'NotFound');
    const n = structuredClone(cur);
    const p = patch as { spec?: { unschedulable?: boolean | null }; metadata?: { labels?: Record<string, string | null> } };
    if (p.spec && 'unschedulable' in p.spec) {
      if (p.spec.unschedulable === null || p.spec.unschedulable === undefined) delete n.spec!.unschedulable;
      else n.spec = { ...n.spec, unschedulable: p.spec.unschedulable };
    }
    for (const [k, v] of Object.entries(p.metadata?.labels ?? {})) {
      const labels = (n.metadata!.labels ??= {});
      if (v === null) delete labels[k];
      else labels[k] = v;
    }
    if (!opts?.dryRun) {
      this.mutations.push(`patch node/${name}`);
      this.nodes.set(name, n);
    }
    return structuredClone(n);
  }

  async getLease(name: string) {
    return structuredClone(this.leases.get(name) ?? null);
  }

  async createLease(lease: LeaseRecord) {
    if (this.leases.has(lease.name)) throw new KubeApiError('Kubernetes API: already exists (409)', 409, 'AlreadyExists');
    const stored = { ...structuredClone(lease), resourceVersion: String(++this.leaseVersion) };
    this.leases.set(lease.name, stored);
    return structuredClone(stored);
  }

  async updateLease(lease: LeaseRecord & { resourceVersion: string }) {
    const cur = this.leases.get(lease.name);
    if (!cur) throw new KubeApiError('Kubernetes API: not found (404)', 404, 'NotFound');
    if (cur.resourceVersion !== lease.resourceVersion) throw new KubeApiError('Kubernetes API: the object has been modified (409)', 409, 'Conflict');
    const stored = { ...structuredClone(lease), resourceVersion: String(++this.leaseVersion) };
    this.leases.set(lease.name, stored);
    return structuredClone(stored);
  }

  async deleteLease(name: string, resourceVersion: string) {
    const cur = this.leases.get(name);
    if (cur && cur.resourceVersion !== resourceVersion) throw new KubeApiError('Kubernetes API: precondition failed (409)', 409, 'Conflict');
    this.leases.delete(name);
  }

  /** Permissions a test took away: { verb, resource } pairs (optionally only in one namespace) answered "denied". */
  denied: Array<{ verb: string; resource: string; namespace?: string }> = [];

  async cannotDo(permissions: KubePermission[], namespace = this.namespace) {
    return permissions.filter((p) =>
      this.denied.some((d) => d.verb === p.verb && d.resource === p.resource && (d.namespace === undefined || d.namespace === (p.namespace ?? namespace))),
    );
  }

  /** Who whoAmI says this client is. */
  identity: { username: string; groups: string[] } = { username: 'operator', groups: ['system:authenticated'] };

  async whoAmI() {
    this.check('whoAmI');
    return structuredClone(this.identity);
  }

  /** Whole ConfigMaps by "namespace/name" (the approval calls); `configMaps` above holds key names for getConfigMapKeys. */
  configMapObjects = new Map<string, V1ConfigMap>();
  private cmVersion = 0;
  private cmWatchers = new Set<(type: WatchEvent<V1ConfigMap>['type'], cm: V1ConfigMap) => void>();

  private cmChanged(type: WatchEvent<V1ConfigMap>['type'], cm: V1ConfigMap) {
    for (const w of [...this.cmWatchers]) w(type, cm);
  }

  async getConfigMap(namespace: string, name: string) {
    this.check('getConfigMap');
    return structuredClone(this.configMapObjects.get(`${namespace}/${name}`) ?? null);
  }

  async listConfigMaps(namespace: string, labelSelector?: string) {
    this.check('listConfigMaps');
    const want = (labelSelector ?? '')
      .split(',')
      .filter(Boolean)
      .map((kv) => kv.split('='));
    return [...this.configMapObjects.entries()]
      .filter(([k, cm]) => k.startsWith(`${namespace}/`) && want.every(([lk, lv]) => cm.metadata?.labels?.[lk] === lv))
      .map(([, cm]) => structuredClone(cm));
  }

  async createConfigMap(namespace: string, cm: V1ConfigMap, opts?: WriteOptions) {
    this.check('createConfigMap');
    const name = cm.metadata?.name ?? '';
    if (this.configMapObjects.has(`${namespace}/${name}`))
      throw new KubeApiError(`Kubernetes API: configmaps "${name}" already exists (409)`, 409, 'AlreadyExists');
    const stored: V1ConfigMap = { ...structuredClone(cm), metadata: { ...cm.metadata, name, namespace, resourceVersion: String(++this.cmVersion) } };
    if (opts?.dryRun) return stored;
    this.mutations.push(`create configmap/${name}`);
    this.configMapObjects.set(`${namespace}/${name}`, stored);
    this.cmChanged('ADDED', structuredClone(stored));
    return structuredClone(stored);
  }

  async patchConfigMap(namespace: string, name: string, patch: Record<string, unknown>, opts?: WriteOptions & { resourceVersion?: string }) {
    this.check('patchConfigMap');
    const cur = this.configMapObjects.get(`${namespace}/${name}`);
    if (!cur) throw new KubeApiError(`Kubernetes API: configmaps "${name}" not found (404)`, 404, 'NotFound');
    if (opts?.resourceVersion && opts.resourceVersion !== cur.metadata?.resourceVersion)
      throw new KubeApiError('Kubernetes API: the object has been modified (409)', 409, 'Conflict');
    const next = mergePatch(structuredClone(cur), patch) as V1ConfigMap;
    next.metadata = { ...next.metadata, name, namespace, resourceVersion: String(++this.cmVersion) };
    if (opts?.dryRun) return next;
    this.mutations.push(`patch configmap/${name}`);
    this.configMapObjects.set(`${namespace}/${name}`, next);
    this.cmChanged('MODIFIED', structuredClone(next));
    return structuredClone(next);
  }

  async deleteConfigMap(namespace: string, name: string, resourceVersion?: string) {
    this.check('deleteConfigMap');
    const cur = this.configMapObjects.get(`${namespace}/${name}`);
    if (!cur) throw new KubeApiError(`Kubernetes API: configmaps "${name}" not found (404)`, 404, 'NotFound');
    if (resourceVersion && resourceVersion !== cur.metadata?.resourceVersion)
      throw new KubeApiError('Kubernetes API: precondition failed (409)', 409, 'Conflict');
    this.mutations.push(`delete configmap/${name}`);
    this.configMapObjects.delete(`${namespace}/${name}`);
    this.cmChanged('DELETED', structuredClone(cur));
  }

  async watchConfigMap(namespace: string, name: string, onEvent: (ev: WatchEvent<V1ConfigMap>) => boolean | void, signal: AbortSignal) {
    this.check('watchConfigMap');
    const cur = this.configMapObjects.get(`${namespace}/${name}`);
    if (!cur) throw new KubeApiError(`Kubernetes API: configmap ${name} not found in namespace ${namespace} (404)`, 404, 'NotFound');
    if (onEvent({ type: 'ADDED', object: structuredClone(cur) }) === true) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.cmWatchers.delete(watcher);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const watcher = (type: WatchEvent<V1ConfigMap>['type'], cm: V1ConfigMap) => {
        if (cm.metadata?.namespace === namespace && cm.metadata?.name === name && onEvent({ type, object: cm }) === true) done();
      };
      if (signal.aborted) return resolve();
      this.cmWatchers.add(watcher);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  close() {}
}

/** RFC 7386 JSON merge patch: null removes a key, objects merge, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export function fakeFactories(kube: FakeKube): ClientFactories {
  return { kube: async () => kube, http: fetchHttpClient };
}
