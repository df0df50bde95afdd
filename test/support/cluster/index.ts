/**
 * Tests' handle on the real control plane: one namespace and a few kwok nodes of their own, a
 * kubeconfig for the tool (through the fault proxy, as user `operator`), and the harness's own
 * admin access for seeding, reading and faults. Every behaviour comes from the real components:
 * faults are ValidatingAdmissionPolicies, ResourceQuotas, kwok stages, RBAC, a paused
 * controller-manager or etcd compaction; the proxy only adds transport faults.
 *
 * ```ts
 * const kube = await startKube({ namespace: 'app-procedures' });
 * await kube.writeKubeconfig(join(dir, 'kubeconfig'));
 * await kube.seedDeployment({ name: 'app', replicas: 2 });
 * kube.faults.add({ method: 'PATCH', path: /\/scale$/, status: 500 });
 * expect(kube.mutations()).toEqual([]);
 * await kube.close();
 * ```
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { makeTempDir, onProcessExit, removeDirSync } from '../services/util.js';
import { mintUserKubeconfig, sharedControlPlane, type ControlPlane, type ControlPlaneInfo } from './control-plane.js';
import { identityFromKubeconfig, startFaultProxy, type FaultProxy, type RecordedRequest } from './proxy.js';
import type { Container, Deployment, KubeObject, NodeObject, Pod } from './types.js';

export type { Fault, RecordedRequest } from './proxy.js';
export type { ControlPlaneInfo } from './control-plane.js';
export type * from './types.js';

/** How new pods in the namespace fail (a kwok stage), or undefined for normal start-up. */
export type PodFailureMode = 'never-ready' | 'crash-loop' | 'image-pull';

export interface Usage {
  cpu: string;
  memory: string;
}

export interface SeedDeploymentOptions {
  name: string;
  replicas: number;
  /** Pod labels, also the selector (default { app: name }). */
  labels?: Record<string, string>;
  containers?: Container[];
  annotations?: Record<string, string>;
  strategy?: Deployment['spec']['strategy'];
  progressDeadlineSeconds?: number;
  minReadySeconds?: number;
  /** Wait for the rollout to complete (default true). */
  wait?: boolean;
}

export interface WaitOptions {
  timeoutMs?: number;
}

export interface KubeHarness {
  info: ControlPlaneInfo;
  /** The namespace this harness owns (created with a unique suffix). */
  namespace: string;
  /** The kwok nodes this harness created (cluster-scoped, named after the namespace). */
  nodes: string[];
  /** What the tool's kubeconfig points at: the proxy in front of the real server. */
  url: string;
  caPem: string;
  /** Every request the tool sent (through the proxy), in order; `requests.length = 0` clears it. */
  requests: RecordedRequest[];
  mutations(): RecordedRequest[];
  faults: FaultProxy['faults'];
  /** TCP connections the tool opened to the API server (through the proxy) so far. */
  connections(): number;
  /** A kubeconfig for the tool: user `operator` (cluster-admin unless `groups` says otherwise) via the proxy. */
  writeKubeconfig(path: string, opts?: { context?: string; namespace?: string }): Promise<void>;
  /** A client-certificate kubeconfig straight to the API server, for any identity. */
  userKubeconfig(path: string, user: { name: string; groups?: string[]; context?: string; namespace?: string }): string;
  /** Admin reads and writes (no proxy, never recorded). Resource names are plurals: 'deployments', 'pods', … */
  get<T extends KubeObject = KubeObject>(resource: string, namespace: string | undefined, name: string): Promise<T | undefined>;
  list<T extends KubeObject = KubeObject>(resource: string, opts?: { namespace?: string; labelSelector?: string; fieldSelector?: string }): Promise<T[]>;
  create<T extends KubeObject>(obj: T): Promise<T>;
  /** Create, or replace what is there (keeping its resourceVersion). */
  put<T extends KubeObject>(obj: T): Promise<T>;
  patch<T extends KubeObject = KubeObject>(
    resource: string,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    type?: 'merge' | 'strategic' | 'json',
  ): Promise<T>;
  remove(resource: string, namespace: string | undefined, name: string): Promise<void>;
  seedDeployment(opts: SeedDeploymentOptions): Promise<Deployment>;
  seedSecret(name: string, data: Record<string, string>, type?: string): Promise<KubeObject>;
  seedConfigMap(name: string, data: Record<string, string>): Promise<KubeObject>;
  seedNode(name: string, labels?: Record<string, string>): Promise<NodeObject>;
  /** A container's log as the kubelet (kwok) serves it; default container: the pod's first. */
  setPodLogs(pod: string, lines: string[], opts?: { previous?: boolean; container?: string }): Promise<void>;
  appendPodLogs(pod: string, lines: string[], opts?: { container?: string }): Promise<void>;
  /** `kubectl exec` into the pod's containers runs this local directory's commands (kwok Exec). */
  enableExec(pod: string, opts?: { containers?: string[]; workDir?: string; env?: Record<string, string> }): Promise<void>;
  /**
   * `kubectl port-forward` to the pod's `ports` (all of them when omitted) reaches this machine's
   * `target` (kwok PortForward), e.g. a local process standing in for the container's server.
   */
  enablePortForward(pod: string, target: { address?: string; port: number }, opts?: { ports?: number[] }): Promise<void>;
  /** metrics.k8s.io usage for one pod (by annotation), or for every pod whose name starts with a prefix. */
  setPodUsage(pod: string, usage: Record<string, Usage>): Promise<void>;
  setUsageByPrefix(prefix: string, usage: Record<string, Usage>): Promise<void>;
  /** New pods in the namespace fail this way from now on (undefined: back to normal). */
  failPods(mode: PodFailureMode | undefined): Promise<void>;
  /** Puts a running pod into CrashLoopBackOff (restarts, last termination). */
  crashLoop(pod: string, opts?: { restartCount?: number; exitCode?: number; reason?: string }): Promise<void>;
  /** Denies matching writes in the namespace with a ValidatingAdmissionPolicy (CEL); returns the undo. */
  denyWrites(rule: {
    resources: string[];
    apiGroups?: string[];
    operations?: Array<'CREATE' | 'UPDATE' | 'DELETE'>;
    message?: string;
  }): Promise<() => Promise<void>>;
  /** SIGSTOP / SIGCONT the controller-manager: nothing reconciles while it is paused. */
  pauseControllers(): void;
  resumeControllers(): void;
  rolloutComplete(name: string): Promise<boolean>;
  waitFor(predicate: () => Promise<boolean> | boolean, opts?: WaitOptions & { what?: string }): Promise<void>;
  waitForRollout(name: string, opts?: WaitOptions): Promise<void>;
  /** Runs the real kubectl with the tool's kubeconfig (through the proxy). */
  kubectl(args: string[], opts?: { kubeconfig?: string; input?: string; namespace?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Deletes the namespace and nodes; stops a private control plane. */
  close(): Promise<void>;
}

interface ResourceDef {
  base: string;
  namespaced: boolean;
  kind: string;
}

const RESOURCES: Record<string, ResourceDef> = {
  namespaces: { base: '/api/v1', namespaced: false, kind: 'Namespace' },
  nodes: { base: '/api/v1', namespaced: false, kind: 'Node' },
  pods: { base: '/api/v1', namespaced: true, kind: 'Pod' },
  secrets: { base: '/api/v1', namespaced: true, kind: 'Secret' },
  configmaps: { base: '/api/v1', namespaced: true, kind: 'ConfigMap' },
  events: { base: '/api/v1', namespaced: true, kind: 'Event' },
  services: { base: '/api/v1', namespaced: true, kind: 'Service' },
  serviceaccounts: { base: '/api/v1', namespaced: true, kind: 'ServiceAccount' },
  resourcequotas: { base: '/api/v1', namespaced: true, kind: 'ResourceQuota' },
  deployments: { base: '/apis/apps/v1', namespaced: true, kind: 'Deployment' },
  replicasets: { base: '/apis/apps/v1', namespaced: true, kind: 'ReplicaSet' },
  horizontalpodautoscalers: { base: '/apis/autoscaling/v2', namespaced: true, kind: 'HorizontalPodAutoscaler' },
  leases: { base: '/apis/coordination.k8s.io/v1', namespaced: true, kind: 'Lease' },
  roles: { base: '/apis/rbac.authorization.k8s.io/v1', namespaced: true, kind: 'Role' },
  rolebindings: { base: '/apis/rbac.authorization.k8s.io/v1', namespaced: true, kind: 'RoleBinding' },
  clusterroles: { base: '/apis/rbac.authorization.k8s.io/v1', namespaced: false, kind: 'ClusterRole' },
  clusterrolebindings: { base: '/apis/rbac.authorization.k8s.io/v1', namespaced: false, kind: 'ClusterRoleBinding' },
  validatingadmissionpolicies: { base: '/apis/admissionregistration.k8s.io/v1', namespaced: false, kind: 'ValidatingAdmissionPolicy' },
  validatingadmissionpolicybindings: { base: '/apis/admissionregistration.k8s.io/v1', namespaced: false, kind: 'ValidatingAdmissionPolicyBinding' },
  stages: { base: '/apis/kwok.x-k8s.io/v1alpha1', namespaced: false, kind: 'Stage' },
  logs: { base: '/apis/kwok.x-k8s.io/v1alpha1', namespaced: true, kind: 'Logs' },
  clusterlogs: { base: '/apis/kwok.x-k8s.io/v1alpha1', namespaced: false, kind: 'ClusterLogs' },
  execs: { base: '/apis/kwok.x-k8s.io/v1alpha1', namespaced: true, kind: 'Exec' },
  portforwards: { base: '/apis/kwok.x-k8s.io/v1alpha1', namespaced: true, kind: 'PortForward' },
};

const KIND_TO_RESOURCE = Object.fromEntries(Object.entries(RESOURCES).map(([r, d]) => [d.kind, r]));

export class KubeRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
  }
}

/** Admin HTTPS access to the real API server with the harness's client certificate. */
export class AdminClient {
  private readonly ca: Buffer;
  private readonly cert: string;
  private readonly key: string;
  constructor(readonly info: ControlPlaneInfo) {
    this.ca = readFileSync(info.caFile);
    const id = identityFromKubeconfig(info.kubeconfig);
    this.cert = id.cert;
    this.key = id.key;
  }

  request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const url = new URL(path, this.info.server);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method,
          ca: this.ca,
          cert: this.cert,
          key: this.key,
          headers: { accept: 'application/json', ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              /* plain text */
            }
            if ((res.statusCode ?? 0) >= 400) {
              const msg = (parsed as { message?: string })?.message ?? text;
              reject(new KubeRequestError(`${method} ${path}: ${res.statusCode} ${msg}`, res.statusCode ?? 0, parsed));
            } else resolve(parsed as T);
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  path(resource: string, namespace: string | undefined, name?: string): string {
    const def = RESOURCES[resource];
    if (!def) throw new Error(`harness: unknown resource ${resource}`);
    const ns = def.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    return `${def.base}${ns}/${resource}${name ? `/${encodeURIComponent(name)}` : ''}`;
  }

  resourceOf(obj: KubeObject): string {
    const r = KIND_TO_RESOURCE[obj.kind];
    if (!r) throw new Error(`harness: unknown kind ${obj.kind}`);
    return r;
  }
}

const rand = () => randomBytes(3).toString('hex');
const CRI_TIME = () =>
  new Date()
    .toISOString()
    .replace('Z', '000000Z')
    .replace(/\.(\d{3})0+/, '.$1000000');

function criLines(lines: string[]): string {
  return lines.map((l) => `${CRI_TIME()} stdout F ${l}\n`).join('');
}

function stage(
  name: string,
  namespace: string,
  extra: Array<{ key: string; operator: string; values?: string[] }>,
  statusTemplate: string,
  delayMs = 0,
): KubeObject {
  return {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'Stage',
    metadata: { name, labels: { 'runbook.test/namespace': namespace } },
    spec: {
      resourceRef: { apiGroup: 'v1', kind: 'Pod' },
      selector: {
        matchExpressions: [
          { key: '.metadata.namespace', operator: 'In', values: [namespace] },
          { key: '.metadata.deletionTimestamp', operator: 'DoesNotExist' },
          ...extra,
        ],
      },
      weight: 10000,
      ...(delayMs ? { delay: { durationMilliseconds: delayMs } } : {}),
      next: { statusTemplate },
    },
  } as KubeObject;
}

const CONDITIONS = (ready: boolean) => `
conditions:
- { type: Initialized, status: "True", lastTransitionTime: {{ Now | Quote }} }
- { type: PodScheduled, status: "True", lastTransitionTime: {{ Now | Quote }} }
- { type: Ready, status: "${ready ? 'True' : 'False'}", lastTransitionTime: {{ Now | Quote }}${ready ? '' : ', reason: ContainersNotReady, message: "containers with unready status"'} }
- { type: ContainersReady, status: "${ready ? 'True' : 'False'}", lastTransitionTime: {{ Now | Quote }} }
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
startTime: {{ Now | Quote }}`;

const FAILURE_TEMPLATES: Record<PodFailureMode, string> = {
  'never-ready': `${CONDITIONS(false)}
phase: Running
containerStatuses:
{{ range .spec.containers }}
- { name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: false, started: true, restartCount: 0, state: { running: { startedAt: {{ Now | Quote }} } } }
{{ end }}`,
  'crash-loop': `${CONDITIONS(false)}
phase: Running
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: 5
  state: { waiting: { reason: CrashLoopBackOff, message: "back-off 5m0s restarting failed container" } }
  lastState: { terminated: { exitCode: 1, reason: Error, startedAt: {{ Now | Quote }}, finishedAt: {{ Now | Quote }} } }
{{ end }}`,
  'image-pull': `${CONDITIONS(false)}
phase: Pending
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state: { waiting: { reason: ImagePullBackOff, message: {{ printf "Back-off pulling image %q" .image | Quote }} } }
{{ end }}`,
};

export interface StartKubeOptions {
  /** Namespace prefix; a random suffix makes it unique on the shared control plane. */
  namespace?: string;
  /** How many kwok nodes of its own (default 3), named `<namespace>-node-N`. */
  nodes?: number;
  /** A control plane of its own (for faults that affect the whole cluster). */
  controlPlane?: ControlPlane;
  /** Use the namespace name as given (`npm run sandbox`, which owns its control plane). */
  exactNamespace?: boolean;
}

export async function startKube(opts: StartKubeOptions = {}): Promise<KubeHarness> {
  const cp = opts.controlPlane ?? (await sharedControlPlane());
  const info = cp.info;
  const admin = new AdminClient(info);
  const namespace = opts.exactNamespace ? (opts.namespace ?? 'default') : `${opts.namespace ?? 'test'}-${rand()}`;
  const dir = makeTempDir('runbook-kube-');
  const unregister = onProcessExit(() => removeDirSync(dir));
  const operatorKubeconfig = mintUserKubeconfig(info, join(dir, 'operator.kubeconfig'), { name: 'operator', groups: ['system:masters'] });
  const proxy = await startFaultProxy(info, identityFromKubeconfig(operatorKubeconfig));
  const caPem = readFileSync(info.caFile, 'utf8');
  const logsDir = join(dir, 'logs');
  mkdirSync(logsDir);
  const logState = new Map<string, Map<string, { current?: string; previous?: string }>>();
  const stages = new Set<string>();

  const get = async <T extends KubeObject>(resource: string, ns: string | undefined, name: string): Promise<T | undefined> => {
    try {
      return await admin.request<T>('GET', admin.path(resource, ns, name));
    } catch (err) {
      if (err instanceof KubeRequestError && err.status === 404) return undefined;
      throw err;
    }
  };
  const list = async <T extends KubeObject>(resource: string, o: { namespace?: string; labelSelector?: string; fieldSelector?: string } = {}): Promise<T[]> => {
    const q = new URLSearchParams();
    if (o.labelSelector) q.set('labelSelector', o.labelSelector);
    if (o.fieldSelector) q.set('fieldSelector', o.fieldSelector);
    const l = await admin.request<{ items: T[] }>('GET', `${admin.path(resource, o.namespace)}${q.size ? `?${q}` : ''}`);
    return l.items;
  };
  const create = <T extends KubeObject>(obj: T) => admin.request<T>('POST', admin.path(admin.resourceOf(obj), obj.metadata.namespace), obj);
  const put = async <T extends KubeObject>(obj: T): Promise<T> => {
    const resource = admin.resourceOf(obj);
    for (let i = 0; ; i++) {
      const cur = await get<T>(resource, obj.metadata.namespace, obj.metadata.name);
      if (!cur) return create(obj);
      try {
        return await admin.request<T>('PUT', admin.path(resource, obj.metadata.namespace, obj.metadata.name), {
          ...obj,
          metadata: { ...obj.metadata, resourceVersion: cur.metadata.resourceVersion },
        });
      } catch (err) {
        if (!(err instanceof KubeRequestError && err.status === 409) || i > 5) throw err;
      }
    }
  };
  const patch = <T extends KubeObject>(resource: string, ns: string | undefined, name: string, body: unknown, type: 'merge' | 'strategic' | 'json' = 'merge') =>
    admin.request<T>(
      'PATCH',
      admin.path(resource, ns, name),
      body,
      { merge: 'application/merge-patch+json', strategic: 'application/strategic-merge-patch+json', json: 'application/json-patch+json' }[type],
    );
  const remove = async (resource: string, ns: string | undefined, name: string) => {
    try {
      await admin.request('DELETE', admin.path(resource, ns, name));
    } catch (err) {
      if (!(err instanceof KubeRequestError && err.status === 404)) throw err;
    }
  };

  const waitFor = async (predicate: () => Promise<boolean> | boolean, w: WaitOptions & { what?: string } = {}) => {
    const deadline = Date.now() + (w.timeoutMs ?? 15_000);
    for (;;) {
      if (await predicate()) return;
      if (Date.now() > deadline) throw new Error(`kube harness: ${w.what ?? 'condition'} not met within ${w.timeoutMs ?? 15_000} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const rolloutComplete = async (name: string) => {
    const d = await get<Deployment>('deployments', namespace, name);
    if (!d?.status) return false;
    const want = d.spec.replicas ?? 1;
    const s = d.status;
    return (
      (s.observedGeneration ?? 0) >= (d.metadata.generation ?? 1) &&
      (s.updatedReplicas ?? 0) === want &&
      (s.replicas ?? 0) === want &&
      (s.availableReplicas ?? 0) === want
    );
  };

  /** What a stalled rollout is waiting on: the deployment's status, its pods and their warnings. */
  const rolloutState = async (name: string): Promise<string> => {
    const d = await get<Deployment>('deployments', namespace, name);
    if (!d) return `deployment/${name} does not exist`;
    const selector = Object.entries(d.spec.selector.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const [pods, events] = await Promise.all([list<Pod>('pods', { namespace, labelSelector: selector }), list<KubeObject>('events', { namespace })]);
    const lines = [`deployment/${name} status: ${JSON.stringify(d.status ?? {})}`];
    for (const p of pods) {
      const conditions = (p.status?.conditions ?? []).map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ''}`).join(' ');
      lines.push(`pod/${p.metadata.name} on ${p.spec.nodeName ?? '(unscheduled)'}: ${p.status?.phase ?? '?'} ${conditions}`);
    }
    const names = new Set(pods.map((p) => p.metadata.name));
    for (const e of events as Array<KubeObject & { type?: string; reason?: string; message?: string; involvedObject?: { name?: string } }>)
      if (e.type === 'Warning' && names.has(e.involvedObject?.name ?? '')) lines.push(`warning ${e.involvedObject?.name}: ${e.reason} ${e.message}`);
    return lines.join('\n');
  };

  /**
   * Whether kwok has the pod's PortForward yet: `kubectl port-forward` and one connection, refused by
   * kwok with "no forward found" until it has seen the object (a target not listening yet is fine).
   */
  const kwokHasForward = async (pod: string, port: number): Promise<boolean> => {
    const { spawn } = await import('node:child_process');
    const { createServer, connect } = await import('node:net');
    const local = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const child = spawn(
      'kubectl',
      ['--kubeconfig', info.kubeconfig, '-n', namespace, 'port-forward', `pod/${pod}`, `${local}:${port}`, '--address', '127.0.0.1'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const ready = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 5000);
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('Forwarding from')) {
            clearTimeout(t);
            resolve(true);
          }
        });
        child.on('exit', () => resolve(false));
      });
      if (!ready) return false;
      await new Promise<void>((resolve) => {
        const s = connect(local, '127.0.0.1', () => setTimeout(() => (s.destroy(), resolve()), 500));
        s.on('error', () => resolve());
      });
      return !/no forward found|forward not found/.test(stderr);
    } finally {
      child.kill();
    }
  };

  const firstContainer = async (pod: string) => {
    const p = await get<Pod>('pods', namespace, pod);
    if (!p) throw new Error(`harness: pod ${namespace}/${pod} not found`);
    return p.spec.containers[0]?.name ?? '';
  };

  const writeLogs = async (pod: string) => {
    const containers = logState.get(pod) ?? new Map();
    await put({
      apiVersion: 'kwok.x-k8s.io/v1alpha1',
      kind: 'Logs',
      metadata: { name: pod, namespace },
      spec: {
        logs: [
          ...[...containers.entries()].map(([c, f]) => ({
            containers: [c],
            logsFile: f.current ?? join(logsDir, 'empty.log'),
            ...(f.previous ? { previousLogsFile: f.previous } : {}),
            follow: false,
          })),
          // The pod's other containers: empty logs, as a kubelet serves them.
          { logsFile: join(logsDir, 'empty.log') },
        ],
      },
    } as KubeObject);
  };
  writeFileSync(join(logsDir, 'empty.log'), '');

  // The control plane is shared by test files running at once, and each deletes its nodes when it
  // closes. The PodNodeSelector admission plugin keeps this namespace's pods on this harness's own
  // nodes: a pod bound to another test's node as it is deleted would never start, and the pod
  // garbage collector would only replace it 40 s later.
  const pinned = { 'scheduler.alpha.kubernetes.io/node-selector': `runbook.test/namespace=${namespace}` };
  if (!(await get('namespaces', undefined, namespace)))
    await create({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: namespace, labels: { 'runbook.test/harness': 'true' }, annotations: pinned },
    } as KubeObject);
  else await patch('namespaces', undefined, namespace, { metadata: { annotations: pinned } });
  // Pods need the namespace's default ServiceAccount, which the controller-manager creates.
  await waitFor(async () => Boolean(await get('serviceaccounts', namespace, 'default')), { what: `serviceaccount ${namespace}/default`, timeoutMs: 30_000 });

  const seedNode = async (name: string, labels: Record<string, string> = {}): Promise<NodeObject> => {
    const node = await put({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        annotations: { 'kwok.x-k8s.io/node': 'fake' },
        labels: {
          'kubernetes.io/hostname': name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          type: 'kwok',
          'runbook.test/namespace': namespace,
          ...labels,
        },
      },
      status: { capacity: { cpu: '4', memory: '16Gi', pods: '110' }, allocatable: { cpu: '4', memory: '16Gi', pods: '110' } },
    } as unknown as NodeObject);
    await waitFor(
      async () => {
        const n = await get<NodeObject & { spec?: { taints?: Array<{ key: string }> } }>('nodes', undefined, name);
        const ready = (n?.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions?.some(
          (c) => c.type === 'Ready' && c.status === 'True',
        );
        return Boolean(ready) && !(n?.spec?.taints ?? []).some((t) => t.key === 'node.kubernetes.io/not-ready');
      },
      { what: `node ${name} Ready`, timeoutMs: 30_000 },
    );
    return node;
  };
  const nodes = Array.from({ length: opts.nodes ?? 3 }, (_, i) => `${namespace}-node-${i + 1}`);
  await Promise.all(nodes.map((n) => seedNode(n)));

  const kubeconfigText = (context: string, ns: string) =>
    `${JSON.stringify(
      {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: context, cluster: { server: proxy.url, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
        users: [{ name: context, user: { token: 'operator-via-proxy' } }],
        contexts: [{ name: context, context: { cluster: context, user: context, namespace: ns } }],
        'current-context': context,
      },
      null,
      2,
    )}\n`;
  const defaultKubeconfig = join(dir, 'tool.kubeconfig');
  writeFileSync(defaultKubeconfig, kubeconfigText('test', namespace), { mode: 0o600 });

  const harness: KubeHarness = {
    info,
    namespace,
    nodes,
    url: proxy.url,
    caPem,
    requests: proxy.requests,
    mutations: proxy.mutations,
    faults: proxy.faults,
    connections: proxy.connections,
    async writeKubeconfig(path, k = {}) {
      writeFileSync(path, kubeconfigText(k.context ?? 'test', k.namespace ?? namespace), { mode: 0o600 });
    },
    userKubeconfig: (path, user) => mintUserKubeconfig(info, path, user),
    get,
    list,
    create,
    put,
    patch,
    remove,
    async seedDeployment(s) {
      const labels = s.labels ?? { app: s.name };
      await create<Deployment>({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: s.name, namespace, labels: { ...labels }, ...(s.annotations ? { annotations: { ...s.annotations } } : {}) },
        spec: {
          replicas: s.replicas,
          selector: { matchLabels: { ...labels } },
          ...(s.strategy ? { strategy: s.strategy } : {}),
          ...(s.progressDeadlineSeconds === undefined ? {} : { progressDeadlineSeconds: s.progressDeadlineSeconds }),
          ...(s.minReadySeconds === undefined ? {} : { minReadySeconds: s.minReadySeconds }),
          template: {
            metadata: { labels: { ...labels } },
            spec: { containers: s.containers ?? [{ name: s.name, image: `registry.example.com/${s.name}:1.0.0`, ports: [{ containerPort: 8080 }] }] },
          },
        },
      } as Deployment);
      if (s.wait !== false) await harness.waitForRollout(s.name, { timeoutMs: 30_000 });
      return (await get<Deployment>('deployments', namespace, s.name))!;
    },
    seedSecret: (name, data, type = 'Opaque') =>
      put({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace },
        type,
        data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      } as KubeObject),
    seedConfigMap: (name, data) => put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data } as KubeObject),
    seedNode,
    async setPodLogs(pod, lines, o = {}) {
      const container = o.container ?? (await firstContainer(pod));
      const file = join(logsDir, `${pod}.${container}.${o.previous ? 'previous' : 'current'}.log`);
      writeFileSync(file, criLines(lines));
      const byContainer = logState.get(pod) ?? new Map();
      logState.set(pod, byContainer);
      byContainer.set(container, { ...byContainer.get(container), [o.previous ? 'previous' : 'current']: file });
      await writeLogs(pod);
    },
    async appendPodLogs(pod, lines, o = {}) {
      const container = o.container ?? (await firstContainer(pod));
      const cur = logState.get(pod)?.get(container)?.current;
      // No log yet: setPodLogs writes the file and the kwok Logs object (it would truncate one written first).
      if (!cur) return harness.setPodLogs(pod, lines, { container });
      writeFileSync(cur, readFileSync(cur, 'utf8') + criLines(lines));
    },
    async enableExec(pod, o = {}) {
      await put({
        apiVersion: 'kwok.x-k8s.io/v1alpha1',
        kind: 'Exec',
        metadata: { name: pod, namespace },
        spec: {
          execs: [
            {
              ...(o.containers ? { containers: o.containers } : {}),
              local: { workDir: o.workDir ?? dir, envs: Object.entries(o.env ?? {}).map(([name, value]) => ({ name, value })) },
            },
          ],
        },
      } as KubeObject);
      // kwok picks the Exec object up from its watch: usable once a no-op exec goes through.
      const container = o.containers?.[0] ?? (await firstContainer(pod));
      await waitFor(
        async () => (await harness.kubectl(['exec', pod, '-c', container, '--', 'true'], { kubeconfig: info.kubeconfig, namespace: namespace })).code === 0,
        { what: `exec into ${pod}`, timeoutMs: 15_000 },
      );
    },
    async enablePortForward(pod, target, o = {}) {
      await put({
        apiVersion: 'kwok.x-k8s.io/v1alpha1',
        kind: 'PortForward',
        metadata: { name: pod, namespace },
        spec: { forwards: [{ ...(o.ports ? { ports: o.ports } : {}), target: { address: target.address ?? '127.0.0.1', port: target.port } }] },
      } as KubeObject);
      // kwok picks the object up from its watch: wait until it knows the first port.
      const probe = o.ports?.[0] ?? target.port;
      await waitFor(() => kwokHasForward(pod, probe), { what: `kwok PortForward for ${pod}:${probe}`, timeoutMs: 20_000 });
    },
    async setPodUsage(pod, usage) {
      await patch('pods', namespace, pod, { metadata: { annotations: { 'metrics.runbook.test/usage': JSON.stringify(usage) } } });
    },
    async setUsageByPrefix(prefix, usage) {
      const cm = await get<KubeObject & { data?: Record<string, string> }>('configmaps', namespace, 'test-metrics');
      await put({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'test-metrics', namespace },
        data: { ...(cm?.data ?? {}), [prefix]: JSON.stringify(usage) },
      } as KubeObject);
    },
    async failPods(mode) {
      const name = `runbook-fail-${namespace}`;
      for (const n of [name, `${name}-hold`]) {
        await remove('stages', undefined, n);
        stages.delete(n);
      }
      if (!mode) return;
      stages.add(name);
      const waiting = '.status.containerStatuses.[].state.waiting.reason';
      await create(
        stage(
          name,
          namespace,
          [
            { key: '.status.phase', operator: 'In', values: ['Pending'] },
            { key: waiting, operator: 'DoesNotExist' },
          ],
          FAILURE_TEMPLATES[mode],
        ),
      );
      if (mode === 'image-pull') {
        // A pod stuck pulling is still Pending, which kwok's pod-ready stage would pick up: hold it.
        stages.add(`${name}-hold`);
        await create(
          stage(
            `${name}-hold`,
            namespace,
            [
              { key: '.status.phase', operator: 'In', values: ['Pending'] },
              { key: waiting, operator: 'In', values: ['ImagePullBackOff'] },
            ],
            FAILURE_TEMPLATES[mode],
            30_000,
          ),
        );
      }
    },
    async crashLoop(pod, o = {}) {
      const name = `runbook-crash-${namespace}-${rand()}`;
      stages.add(name);
      const tpl = FAILURE_TEMPLATES['crash-loop']
        .replace('restartCount: 5', `restartCount: ${o.restartCount ?? 5}`)
        .replace('exitCode: 1, reason: Error', `exitCode: ${o.exitCode ?? 1}, reason: ${o.reason ?? 'Error'}`);
      await create(
        stage(
          name,
          namespace,
          [
            { key: '.metadata.annotations["runbook.test/crash-loop"]', operator: 'In', values: [name] },
            { key: '.status.conditions.[] | select( .type == "Ready" ) | .status', operator: 'In', values: ['True'] },
          ],
          tpl,
        ),
      );
      // kwok looks at a pod again when it changes: the annotation both selects it and wakes it up.
      // kwok may see the pod's change before the new stage, so nudge it until the stage has applied.
      await patch('pods', namespace, pod, { metadata: { annotations: { 'runbook.test/crash-loop': name } } });
      let nudges = 0;
      const started = Date.now();
      const kwokSays = () => {
        try {
          return readFileSync(join(info.dir, 'logs', 'kwok.log'), 'utf8')
            .split('\n')
            .filter((l) => l.includes(pod) || l.includes(name))
            .slice(-5)
            .join('\n');
        } catch {
          return '(no kwok log)';
        }
      };
      await waitFor(
        async () => {
          const p = await get<Pod>('pods', namespace, pod);
          if (!p) throw new Error(`harness: pod ${namespace}/${pod} is gone`);
          if (p.status?.containerStatuses?.some((c) => c.state?.waiting?.reason === 'CrashLoopBackOff')) return true;
          // Seldom: each nudge is a write that kwok's own status write must not keep losing to.
          if (Date.now() - started > 3000 * (nudges + 1))
            await patch('pods', namespace, pod, { metadata: { annotations: { 'runbook.test/nudge': String(++nudges) } } });
          return false;
        },
        { what: `pod ${pod} in CrashLoopBackOff`, timeoutMs: 30_000 },
      ).catch((err: Error) => {
        throw new Error(`${err.message}; kwok said:\n${kwokSays()}`);
      });
    },
    async denyWrites(rule) {
      const name = `runbook-deny-${namespace}-${rand()}`;
      const ops = rule.operations ?? ['CREATE', 'UPDATE', 'DELETE'];
      await create({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: { resourceRules: [{ apiGroups: rule.apiGroups ?? ['*'], apiVersions: ['*'], operations: ops, resources: rule.resources }] },
          validations: [{ expression: 'false', message: rule.message ?? 'denied by test policy' }],
        },
      } as KubeObject);
      await create({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name },
        spec: {
          policyName: name,
          validationActions: ['Deny'],
          matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } },
        },
      } as KubeObject);
      // A policy takes effect once the API server's admission informer has seen it (well under a second).
      await new Promise((r) => setTimeout(r, 1500));
      return async () => {
        await remove('validatingadmissionpolicybindings', undefined, name);
        await remove('validatingadmissionpolicies', undefined, name);
        await new Promise((r) => setTimeout(r, 1500));
      };
    },
    pauseControllers: () => process.kill(info.pids['controller-manager'], 'SIGSTOP'),
    resumeControllers: () => process.kill(info.pids['controller-manager'], 'SIGCONT'),
    rolloutComplete,
    waitFor,
    async waitForRollout(name, w = {}) {
      try {
        await waitFor(() => rolloutComplete(name), { ...w, what: `rollout of deployment/${name}` });
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${await rolloutState(name).catch((e: Error) => `(its state could not be read: ${e.message})`)}`, {
          cause: err,
        });
      }
    },
    kubectl(args, o = {}) {
      return new Promise((resolve) => {
        const child = execFile(
          'kubectl',
          ['--kubeconfig', o.kubeconfig ?? defaultKubeconfig, ...(o.namespace ? ['-n', o.namespace] : []), ...args],
          { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
          (err, stdout, stderr) => {
            const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
            resolve({ code, stdout, stderr });
          },
        );
        if (o.input !== undefined) child.stdin?.end(o.input);
      });
    },
    async close() {
      unregister();
      try {
        process.kill(info.pids['controller-manager'], 'SIGCONT');
      } catch {
        /* gone */
      }
      await proxy.close();
      const left = [...stages].map((s) => remove('stages', undefined, s));
      const nodeGone = nodes.map((n) => remove('nodes', undefined, n));
      await Promise.allSettled([...left, ...nodeGone, remove('namespaces', undefined, namespace)]);
      if (opts.controlPlane) await opts.controlPlane.stop();
      removeDirSync(dir);
    },
  };
  return harness;
}
