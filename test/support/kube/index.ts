/**
 * A Kubernetes API server for tests: real REST over HTTPS (test CA), usable by
 * `kubectl` and `@kubernetes/client-node`. See test/integration/kube-conformance.test.ts
 * for what is verified against the real kubectl.
 *
 * ```ts
 * const kube = await startKubeApiServer();
 * await kube.writeKubeconfig(join(dir, 'kubeconfig'), { namespace: 'prod' });
 * await kube.seedDeployment({ namespace: 'prod', name: 'app', replicas: 2 });
 * kube.faults.add({ method: 'PATCH', path: '/apis/apps/v1/namespaces/prod/deployments/app/scale', status: 500 });
 * // ... run the code under test ...
 * expect(kube.mutations()).toEqual([]);
 * await kube.close();
 * ```
 */
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { getTestCerts } from './certs.js';
import { KubeController, type CrashLoopOptions, type PodFailureMode } from './controller.js';
import { PodLogs } from './logs.js';
import { MetricsSource, type Usage } from './metrics.js';
import { createHandler, type Fault, type RecordedRequest } from './server.js';
import { KubeStore, timestamp } from './store.js';
import type { Container, Deployment, KubeObject, NodeObject, Pod } from './types.js';
import { applyDefaults, validateObject } from './validation.js';

export type { CrashLoopOptions, PodFailureMode } from './controller.js';
export type { Fault, RecordedRequest } from './server.js';
export type { ListOptions, StoreChange } from './store.js';
export { KubeStore } from './store.js';
export type { Usage } from './metrics.js';
export type * from './types.js';

export interface StartKubeApiServerOptions {
  /** Delay before new pods become Ready, in ms (default 50). */
  readyDelayMs?: number;
  /** Default namespace written into kubeconfigs (default 'default'). */
  namespace?: string;
  /** Node names to create (default node-1, node-2, node-3). */
  nodes?: string[];
}

export interface KubeconfigOptions {
  /** Context (and cluster/user) name, default 'test'. */
  context?: string;
  /** Namespace of the context, default the server's `namespace` option. */
  namespace?: string;
  /** Bearer token (any token is accepted), default 'test-token'. */
  token?: string;
}

export interface SeedDeploymentOptions {
  namespace: string;
  name: string;
  replicas: number;
  /** Pod labels, also the selector (default { app: name }). */
  labels?: Record<string, string>;
  /** Pod containers (default one container named like the deployment, image `registry.example.com/<name>:1.0.0`, port 8080). */
  containers?: Container[];
  /** Deployment annotations (e.g. kubernetes.io/change-cause). */
  annotations?: Record<string, string>;
  /** Deployment strategy (default RollingUpdate 25%/25%). */
  strategy?: Deployment['spec']['strategy'];
  /** spec.progressDeadlineSeconds (default 600); small values let tests see ProgressDeadlineExceeded. */
  progressDeadlineSeconds?: number;
  /** Ready delay for this deployment's seed pods in ms (default 0: ready at once). */
  readyDelayMs?: number;
  /** Wait for the rollout to complete before resolving (default true). */
  wait?: boolean;
}

export interface WaitOptions {
  timeoutMs?: number;
}

/** The controller knobs exposed to tests. */
export interface KubeControllerHandle {
  /** Delay before a newly created pod becomes Ready (ms). */
  readyDelayMs: number;
  /**
   * Makes new pods fail instead of becoming Ready: 'never-ready' (Running, readiness
   * failing: rollouts never finish) or 'crash-loop' (CrashLoopBackOff); or a function
   * deciding per pod. `undefined` (default) restores normal behaviour.
   */
  failPods: PodFailureMode | ((pod: Pod) => PodFailureMode | undefined) | undefined;
  /** Options for pods put into crash loop through failPods. */
  crashLoopOptions: CrashLoopOptions;
  /** Queues all controller work until resume(). */
  pause(): void;
  resume(): void;
  /** Puts an existing pod into CrashLoopBackOff (restartCount, lastState.terminated, previous logs, BackOff event). */
  crashLoop(namespace: string, podName: string, opts?: CrashLoopOptions): void;
  /** Makes a (never-ready) pod Ready. */
  markReady(namespace: string, podName: string): void;
}

export interface KubeApiServer {
  /** https://127.0.0.1:PORT */
  url: string;
  /** PEM of the CA that signed the server certificate. */
  caPem: string;
  /** Writes a kubeconfig (cluster with certificate-authority-data, bearer-token user). */
  writeKubeconfig(path: string, opts?: KubeconfigOptions): Promise<void>;
  /**
   * Direct object access for seeding and assertions (no HTTP, no validation):
   * `store.get('deploy', 'prod', 'app')`, `store.list('pods', { namespace, labelSelector })`,
   * `store.put(obj)` (create/replace; the controller reacts), `store.remove(resource, ns, name)`.
   */
  store: KubeStore;
  /** Creates a Deployment and lets the controller create ReplicaSet revision 1 and Ready pods. */
  seedDeployment(opts: SeedDeploymentOptions): Promise<Deployment>;
  /** Creates or replaces a Secret (values given as plain strings). */
  seedSecret(namespace: string, name: string, data: Record<string, string>, type?: string): KubeObject;
  /** Creates or replaces a ConfigMap. */
  seedConfigMap(namespace: string, name: string, data: Record<string, string>): KubeObject;
  /** Creates or replaces a Node (Ready, with capacity). */
  seedNode(name: string, labels?: Record<string, string>): NodeObject;
  /** Sets a container's log (default container: the pod's first). New pods get a few default lines. */
  setPodLogs(namespace: string, podName: string, lines: string[], opts?: { previous?: boolean; container?: string }): void;
  /** Appends lines to a container's current log (seen by `follow=true` readers). */
  appendPodLogs(namespace: string, podName: string, lines: string[], opts?: { container?: string }): void;
  /** Overrides metrics.k8s.io usage (otherwise synthetic, stable per pod/node name). */
  metrics: {
    setPodUsage(namespace: string, podName: string, usageByContainer: Record<string, Usage>): void;
    setNodeUsage(node: string, usage: Usage): void;
  };
  /** Fault injection, matched in insertion order against method + path. */
  faults: { add(fault: Fault): void; clear(): void };
  /** Every request received, in arrival order (clear with `requests.length = 0`). */
  requests: RecordedRequest[];
  /** Successful (2xx) non-GET requests that were not `dryRun=All`. */
  mutations(): RecordedRequest[];
  controller: KubeControllerHandle;
  /** True when the deployment's rollout is complete (what `kubectl rollout status` waits for). */
  rolloutComplete(namespace: string, name: string): boolean;
  /** Resolves once `predicate()` holds (re-checked after every stored change); rejects after timeoutMs (default 5000). */
  waitFor(predicate: () => boolean, opts?: WaitOptions): Promise<void>;
  /** Waits until rolloutComplete(namespace, name). */
  waitForRollout(namespace: string, name: string, opts?: WaitOptions): Promise<void>;
  /** Stops the controller, ends watches and hung requests, closes the server. */
  close(): Promise<void>;
}

function makeNode(name: string, index: number, labels: Record<string, string> = {}): NodeObject {
  const zones = ['a', 'b', 'c'];
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'm5.xlarge',
        'topology.kubernetes.io/zone': `us-east-1${zones[index % 3] ?? 'a'}`,
        ...labels,
      },
    },
    spec: { podCIDR: `10.244.${index}.0/24`, podCIDRs: [`10.244.${index}.0/24`], providerID: `aws:///us-east-1a/i-0${(index + 1).toString(16).padStart(16, '0')}` },
    status: {
      capacity: { cpu: '4', memory: '16266516Ki', pods: '110', 'ephemeral-storage': '104845292Ki' },
      allocatable: { cpu: '3920m', memory: '15249684Ki', pods: '110', 'ephemeral-storage': '95551679124' },
      conditions: [
        ['MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'],
        ['DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'],
        ['PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'],
        ['Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'],
      ].map(([type, status, reason, message]) => ({ type, status, reason, message, lastHeartbeatTime: timestamp(), lastTransitionTime: timestamp() })),
      addresses: [
        { type: 'InternalIP', address: `10.0.0.${10 + index}` },
        { type: 'Hostname', address: name },
      ],
      nodeInfo: {
        kubeletVersion: 'v1.32.0',
        kubeProxyVersion: 'v1.32.0',
        containerRuntimeVersion: 'containerd://1.7.22',
        osImage: 'Ubuntu 22.04.4 LTS',
        kernelVersion: '6.5.0-1022-aws',
        operatingSystem: 'linux',
        architecture: 'amd64',
        machineID: '',
        systemUUID: '',
        bootID: '',
      },
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
    },
  };
}

function firstContainer(store: KubeStore, ns: string, pod: string): string {
  const p = store.get<Pod>('pods', ns, pod);
  if (!p) throw new Error(`pod ${ns}/${pod} not found`);
  return p.spec.containers[0]?.name ?? '';
}

/** Starts the fake API server on a random loopback port. */
export async function startKubeApiServer(opts: StartKubeApiServerOptions = {}): Promise<KubeApiServer> {
  const certs = await getTestCerts();
  const store = new KubeStore();
  const logs = new PodLogs();
  const metrics = new MetricsSource(store);
  const controller = new KubeController(store, logs, { readyDelayMs: opts.readyDelayMs ?? 50 });
  const requests: RecordedRequest[] = [];
  const faults: Array<Fault & { remaining: number }> = [];
  let hostPort = '127.0.0.1:0';
  const handler = createHandler({ store, controller, logs, metrics, faults, requests, hostPort: () => hostPort });
  const server = createServer({ key: certs.keyPem, cert: certs.certPem }, handler.handle);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  hostPort = `127.0.0.1:${port}`;
  const url = `https://${hostPort}`;
  const defaultNamespace = opts.namespace ?? 'default';

  for (const ns of ['default', 'kube-system', defaultNamespace]) {
    if (!store.get('namespaces', undefined, ns)) store.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns } }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
  }
  (opts.nodes ?? ['node-1', 'node-2', 'node-3']).forEach((name, i) => store.put(makeNode(name, i)));

  const rolloutComplete = (namespace: string, name: string): boolean => {
    const d = store.get<Deployment>('deployments', namespace, name);
    if (!d?.status) return false;
    const want = d.spec.replicas ?? 1;
    const s = d.status;
    return (s.observedGeneration ?? 0) >= (d.metadata.generation ?? 1) && (s.updatedReplicas ?? 0) === want && (s.replicas ?? 0) === want && (s.availableReplicas ?? 0) === want;
  };

  const waitFor = (predicate: () => boolean, wopts: WaitOptions = {}): Promise<void> =>
    new Promise((resolve, reject) => {
      if (predicate()) return resolve();
      const timeoutMs = wopts.timeoutMs ?? 5000;
      const timer = setTimeout(() => {
        unsubscribe();
        reject(new Error(`kube test server: condition not met within ${timeoutMs} ms`));
      }, timeoutMs);
      const unsubscribe = store.subscribe(() => {
        if (predicate()) {
          clearTimeout(timer);
          unsubscribe();
          resolve();
        }
      });
    });

  const kube: KubeApiServer = {
    url,
    caPem: certs.caPem,
    store,
    requests,
    controller,
    async writeKubeconfig(path, k = {}) {
      const context = k.context ?? 'test';
      const config = {
        apiVersion: 'v1',
        kind: 'Config',
        preferences: {},
        clusters: [{ name: context, cluster: { server: url, 'certificate-authority-data': Buffer.from(certs.caPem).toString('base64') } }],
        users: [{ name: context, user: { token: k.token ?? 'test-token' } }],
        contexts: [{ name: context, context: { cluster: context, user: context, namespace: k.namespace ?? defaultNamespace } }],
        'current-context': context,
      };
      await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    },
    async seedDeployment(s) {
      const labels = s.labels ?? { app: s.name };
      const d: Deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: s.name, namespace: s.namespace, labels: { ...labels }, ...(s.annotations ? { annotations: { ...s.annotations } } : {}) },
        spec: {
          replicas: s.replicas,
          selector: { matchLabels: { ...labels } },
          ...(s.strategy ? { strategy: s.strategy } : {}),
          ...(s.progressDeadlineSeconds === undefined ? {} : { progressDeadlineSeconds: s.progressDeadlineSeconds }),
          template: {
            metadata: { labels: { ...labels } },
            spec: { containers: s.containers ?? [{ name: s.name, image: `registry.example.com/${s.name}:1.0.0`, ports: [{ containerPort: 8080 }] }] },
          },
        },
      };
      applyDefaults(d);
      const errors = validateObject(d, undefined);
      if (errors.length > 0) throw new Error(`seedDeployment: invalid deployment: ${errors.map((e) => e.message).join('; ')}`);
      const key = `${s.namespace}/${s.name}`;
      controller.readyDelayOverrides.set(key, s.readyDelayMs ?? 0);
      store.put(d);
      try {
        if (s.wait !== false) await waitFor(() => rolloutComplete(s.namespace, s.name));
      } finally {
        controller.readyDelayOverrides.delete(key);
      }
      return store.get<Deployment>('deployments', s.namespace, s.name) ?? d;
    },
    seedSecret(namespace, name, data, type = 'Opaque') {
      const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
      return store.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type, data: encoded });
    },
    seedConfigMap(namespace, name, data) {
      return store.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data });
    },
    seedNode(name, labels) {
      return store.put(makeNode(name, store.list('nodes').length, labels));
    },
    setPodLogs(namespace, podName, lines, o = {}) {
      logs.set(namespace, podName, o.container ?? firstContainer(store, namespace, podName), o.previous === true, lines);
    },
    appendPodLogs(namespace, podName, lines, o = {}) {
      logs.append(namespace, podName, o.container ?? firstContainer(store, namespace, podName), lines);
    },
    metrics: {
      setPodUsage: (ns, pod, usage) => metrics.setPodUsage(ns, pod, usage),
      setNodeUsage: (node, usage) => metrics.setNodeUsage(node, usage),
    },
    faults: {
      add(fault) {
        faults.push({ ...fault, remaining: fault.times ?? 1 });
      },
      clear() {
        faults.length = 0;
      },
    },
    mutations() {
      return requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && !r.dryRun && r.status >= 200 && r.status < 300);
    },
    rolloutComplete,
    waitFor,
    waitForRollout: (namespace, name, w) => waitFor(() => rolloutComplete(namespace, name), w),
    async close() {
      controller.stop();
      handler.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return kube;
}
