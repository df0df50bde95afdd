import {
  KubeConfig,
  AppsV1Api,
  CoreV1Api,
  AutoscalingV2Api,
  CoordinationV1Api,
  CustomObjectsApi,
  AuthorizationV1Api,
  Watch,
  PatchStrategy,
  setHeaderOptions,
  ApiException,
  V1MicroTime,
} from '@kubernetes/client-node';
import type { V1Deployment, V2HorizontalPodAutoscaler, V1Lease } from '@kubernetes/client-node';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { existsSync } from 'node:fs';
import {
  KubeApiError,
  type KubeClient,
  type KubePermission,
  type KubeTarget,
  type LeaseRecord,
  type PatchType,
  type PodMetrics,
  type WatchEvent,
  type WriteOptions,
} from './kube.js';
import { UsageError } from '../core/errors.js';

const CONTENT_TYPE: Record<PatchType, string> = {
  strategic: PatchStrategy.StrategicMergePatch,
  merge: PatchStrategy.MergePatch,
  json: PatchStrategy.JsonPatch,
};

function dry(opts?: WriteOptions): string | undefined {
  return opts?.dryRun ? 'All' : undefined;
}

/** Turns client-node's exceptions into one line: the server's own message and status. */
function toKubeError(err: unknown, server: string): KubeApiError {
  if (err instanceof KubeApiError) return err;
  if (err instanceof ApiException) {
    let message = `HTTP ${err.code}`;
    let reason: string | undefined;
    try {
      const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      if (body?.message) message = String(body.message);
      reason = body?.reason;
    } catch {
      if (typeof err.body === 'string' && err.body.trim()) message = err.body.trim().slice(0, 200);
    }
    return new KubeApiError(`Kubernetes API at ${server}: ${message} (${err.code})`, err.code, reason);
  }
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e?.code ?? e?.cause?.code;
  if (code) return new KubeApiError(`cannot reach the Kubernetes API at ${server}: ${code}`, 0);
  return new KubeApiError(`Kubernetes API: ${e?.message ?? String(err)}`, 0);
}

// MicroTime on the wire has exactly six fractional digits; a plain Date serialises three, and a real
// API server answers 400 to a Lease written that way.
const micro = (d: Date | undefined) => (d ? new V1MicroTime(d.getTime()) : undefined);

function toLease(l: LeaseRecord): V1Lease {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: l.name, resourceVersion: l.resourceVersion, labels: l.labels },
    spec: { holderIdentity: l.holder, acquireTime: micro(l.acquireTime), renewTime: micro(l.renewTime), leaseDurationSeconds: l.durationSeconds },
  };
}

function fromLease(l: V1Lease): LeaseRecord {
  const date = (d: Date | string | undefined) => (d === undefined ? undefined : new Date(d));
  return {
    name: l.metadata?.name ?? '',
    holder: l.spec?.holderIdentity,
    acquireTime: date(l.spec?.acquireTime),
    renewTime: date(l.spec?.renewTime),
    durationSeconds: l.spec?.leaseDurationSeconds,
    resourceVersion: l.metadata?.resourceVersion,
    labels: l.metadata?.labels,
  };
}

/**
 * Several kubeconfig files merged the way kubectl merges $KUBECONFIG: the first file to define a
 * cluster, user or context name wins, and the current context is the first file's that sets one.
 */
function mergeKubeconfigs(files: string[]): KubeConfig {
  const kc = new KubeConfig();
  let current: string | undefined;
  const clusters = new Map<string, KubeConfig['clusters'][number]>();
  const users = new Map<string, KubeConfig['users'][number]>();
  const contexts = new Map<string, KubeConfig['contexts'][number]>();
  for (const f of files) {
    const one = new KubeConfig();
    one.loadFromFile(f);
    current ??= one.currentContext || undefined;
    for (const c of one.clusters) if (!clusters.has(c.name)) clusters.set(c.name, c);
    for (const u of one.users) if (!users.has(u.name)) users.set(u.name, u);
    for (const c of one.contexts) if (!contexts.has(c.name)) contexts.set(c.name, c);
  }
  kc.loadFromOptions({ clusters: [...clusters.values()], users: [...users.values()], contexts: [...contexts.values()], currentContext: current ?? '' });
  return kc;
}

/** ~/.kube/config of the given environment's HOME, else in-cluster credentials. */
function defaultKubeconfig(env: Record<string, string | undefined>): KubeConfig {
  const home = env.HOME ?? env.USERPROFILE;
  const path = home ? `${home}/.kube/config` : undefined;
  if (path && existsSync(path)) return mergeKubeconfigs([path]);
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

export class KubeAdapter implements KubeClient {
  private constructor(
    private readonly kc: KubeConfig,
    readonly namespace: string,
    readonly context: string,
    readonly server: string,
    private readonly apps: AppsV1Api,
    private readonly core: CoreV1Api,
    private readonly autoscaling: AutoscalingV2Api,
    private readonly coordination: CoordinationV1Api,
    private readonly custom: CustomObjectsApi,
    private readonly authz: AuthorizationV1Api,
  ) {}

  static create(target: KubeTarget, env: Record<string, string | undefined>): KubeAdapter {
    const files = target.kubeconfig ? [target.kubeconfig] : (env.KUBECONFIG ?? '').split(':').filter(Boolean);
    const file = files.join(':');
    let kc: KubeConfig;
    try {
      kc = files.length ? mergeKubeconfigs(files) : defaultKubeconfig(env);
    } catch (err) {
      // A config error, found before anything is contacted: exit 2, and resuming cannot help.
      throw new UsageError(
        `cannot load kubeconfig${file ? ` ${file}` : ''}: ${(err as Error).message}`,
        'check kubernetes.kubeconfig in the config, or $KUBECONFIG',
      );
    }
    if (target.context) {
      if (!kc.getContextObject(target.context)) {
        const known = kc.getContexts().map((c) => c.name);
        throw new UsageError(
          `kube context "${target.context}" is not in the kubeconfig${file ? ` ${file}` : ''}`,
          `known contexts: ${known.join(', ') || '(none)'}; check kubernetes.context in the config`,
        );
      }
      kc.setCurrentContext(target.context);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) {
      throw new UsageError(
        `no Kubernetes cluster to talk to: ${file ? `the kubeconfig ${file}` : 'no kubeconfig ($KUBECONFIG, ~/.kube/config) or in-cluster credentials'} names no current context and cluster`,
        'set kubernetes.kubeconfig and kubernetes.context in the config, or $KUBECONFIG',
      );
    }
    return new KubeAdapter(
      kc,
      target.namespace,
      kc.getCurrentContext(),
      cluster.server,
      kc.makeApiClient(AppsV1Api),
      kc.makeApiClient(CoreV1Api),
      kc.makeApiClient(AutoscalingV2Api),
      kc.makeApiClient(CoordinationV1Api),
      kc.makeApiClient(CustomObjectsApi),
      kc.makeApiClient(AuthorizationV1Api),
    );
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toKubeError(err, this.server);
    }
  }

  private async orNull<T>(fn: () => Promise<T>): Promise<T | null> {
    try {
      return await this.call(fn);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return null;
      throw err;
    }
  }

  getDeployment(name: string) {
    return this.call(() => this.apps.readNamespacedDeployment({ name, namespace: this.namespace }));
  }

  patchDeployment(name: string, patch: unknown, type: PatchType, opts?: WriteOptions) {
    return this.call(() =>
      this.apps.patchNamespacedDeployment(
        { name, namespace: this.namespace, body: patch, dryRun: dry(opts), fieldManager: 'runbook' },
        setHeaderOptions('Content-Type', CONTENT_TYPE[type]),
      ),
    );
  }

  scaleDeployment(name: string, replicas: number, opts?: WriteOptions) {
    return this.call(() =>
      this.apps.patchNamespacedDeploymentScale(
        { name, namespace: this.namespace, body: { spec: { replicas } }, dryRun: dry(opts), fieldManager: 'runbook' },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  /**
   * List, then watch from the list's resourceVersion (not the object's, which may be long compacted),
   * as kubectl's `rollout status` does. A watch the server ends is resumed from the last version seen
   * (bookmarks keep it fresh); 410 Gone means that version is compacted: list again. Only repeated
   * failures of other kinds give up.
   */
  async watchDeployment(name: string, onEvent: (ev: WatchEvent<V1Deployment>) => boolean | void, signal: AbortSignal) {
    const watch = new Watch(this.kc);
    const path = `/apis/apps/v1/namespaces/${this.namespace}/deployments`;
    const fieldSelector = `metadata.name=${name}`;
    let failures = 0;
    let resourceVersion: string | undefined;
    let denied: number | undefined;
    while (!signal.aborted) {
      if (resourceVersion === undefined) {
        const list = await this.call(() => this.apps.listNamespacedDeployment({ namespace: this.namespace, fieldSelector }));
        const current = list.items[0];
        if (!current) throw new KubeApiError(`deployment ${name} not found in namespace ${this.namespace} (${this.server})`, 404, 'NotFound');
        current.apiVersion ??= 'apps/v1';
        current.kind ??= 'Deployment';
        if (onEvent({ type: 'ADDED', object: current }) === true) return;
        resourceVersion = list.metadata?.resourceVersion;
      }
      const outcome = await new Promise<'done' | 'ended' | 'gone' | 'error'>((resolve) => {
        let settled = false;
        let ctrl: AbortController | undefined;
        const finish = (how: 'done' | 'ended' | 'gone' | 'error') => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          ctrl?.abort();
          resolve(how);
        };
        const onAbort = () => finish('ended');
        signal.addEventListener('abort', onAbort, { once: true });
        watch
          .watch(
            path,
            { fieldSelector, resourceVersion, allowWatchBookmarks: true },
            (phase, obj: { code?: number; metadata?: { resourceVersion?: string } }) => {
              if (settled) return;
              if (phase === 'ERROR') return finish(obj?.code === 410 ? 'gone' : 'error');
              if (obj?.metadata?.resourceVersion) resourceVersion = obj.metadata.resourceVersion;
              if (phase === 'BOOKMARK') return;
              failures = 0;
              if (onEvent({ type: phase as WatchEvent<V1Deployment>['type'], object: obj as V1Deployment }) === true) finish('done');
            },
            (err: unknown) => {
              const code = (err as { statusCode?: number; code?: number } | null)?.statusCode ?? (err as { code?: number } | null)?.code;
              if (code === 401 || code === 403) denied = code;
              finish(err ? (code === 410 ? 'gone' : 'error') : 'ended');
            },
          )
          .then(
            (c) => {
              ctrl = c;
              if (settled) c.abort();
            },
            (err: unknown) => finish((err as { statusCode?: number })?.statusCode === 410 ? 'gone' : 'error'),
          );
      });
      if (outcome === 'done') return;
      // Retrying a refusal only hides it: say what was refused.
      if (denied)
        throw new KubeApiError(
          `Kubernetes API at ${this.server}: ${denied === 403 ? 'forbidden' : 'unauthorized'}: watch deployments in namespace ${this.namespace} (${denied})`,
          denied,
        );
      if (outcome === 'gone') {
        resourceVersion = undefined;
      } else if (outcome === 'error') {
        failures += 1;
        if (failures > 5) throw new KubeApiError(`watch on deployment/${name} at ${this.server} keeps failing`, 0);
        resourceVersion = undefined;
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** failures)));
      }
    }
  }

  async listPods(labelSelector?: string) {
    const list = await this.call(() => this.core.listNamespacedPod({ namespace: this.namespace, labelSelector }));
    return list.items;
  }

  async listReplicaSets(labelSelector?: string) {
    const list = await this.call(() => this.apps.listNamespacedReplicaSet({ namespace: this.namespace, labelSelector }));
    return list.items;
  }

  async readPodLog(pod: string, opts: { container?: string; tailLines?: number; previous?: boolean; sinceSeconds?: number; timestamps?: boolean } = {}) {
    const text = await this.call(() =>
      this.core.readNamespacedPodLog({
        name: pod,
        namespace: this.namespace,
        container: opts.container,
        tailLines: opts.tailLines,
        previous: opts.previous,
        sinceSeconds: opts.sinceSeconds,
        timestamps: opts.timestamps,
      }),
    );
    return typeof text === 'string' ? text : String(text ?? '');
  }

  async findHpasFor(deployment: string) {
    const list = await this.call(() => this.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: this.namespace }));
    return list.items.filter((h) => h.spec?.scaleTargetRef?.kind === 'Deployment' && h.spec.scaleTargetRef.name === deployment);
  }

  createHpa(hpa: V2HorizontalPodAutoscaler, opts?: WriteOptions) {
    return this.call(() =>
      this.autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace: this.namespace, body: hpa, dryRun: dry(opts), fieldManager: 'runbook' }),
    );
  }

  patchHpaSpec(name: string, spec: V2HorizontalPodAutoscaler['spec'], opts?: WriteOptions) {
    return this.call(() =>
      this.autoscaling.patchNamespacedHorizontalPodAutoscaler(
        { name, namespace: this.namespace, body: { spec }, dryRun: dry(opts), fieldManager: 'runbook' },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  async deleteHpa(name: string) {
    await this.call(() => this.autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name, namespace: this.namespace }));
  }

  async listHpas() {
    const list = await this.call(() => this.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: this.namespace }));
    return list.items;
  }

  async listEvents(fieldSelector?: string) {
    const list = await this.call(() => this.core.listNamespacedEvent({ namespace: this.namespace, fieldSelector }));
    return list.items;
  }

  /** Plain HTTPS GET of /log piped to `out`, so a large log never sits in memory (client-node's Log drops stream errors). */
  async streamPodLog(pod: string, out: NodeJS.WritableStream, opts: { container?: string; previous?: boolean; sinceSeconds?: number } = {}) {
    const url = new URL(`${this.server.replace(/\/$/, '')}/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods/${encodeURIComponent(pod)}/log`);
    if (opts.container) url.searchParams.set('container', opts.container);
    if (opts.previous) url.searchParams.set('previous', 'true');
    if (opts.sinceSeconds) url.searchParams.set('sinceSeconds', String(opts.sinceSeconds));
    const options: RequestOptions = { method: 'GET' };
    await this.kc.applyToHTTPSOptions(options);
    await new Promise<void>((resolve, reject) => {
      const req = httpsRequest(url, options, (res) => {
        if (res.statusCode !== 200) {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c.length + body.length < 4096 ? c : ''));
          res.on('end', () => {
            let message = `HTTP ${res.statusCode}`;
            try {
              message = String(JSON.parse(body).message ?? message);
            } catch {
              if (body.trim()) message = body.trim().slice(0, 200);
            }
            reject(new KubeApiError(`Kubernetes API at ${this.server}: ${message} (${res.statusCode})`, res.statusCode ?? 0));
          });
          return;
        }
        pipeline(res, out).then(resolve, (err) => reject(toKubeError(err, this.server)));
      });
      req.on('error', (err) => reject(toKubeError(err, this.server)));
      req.end();
    });
  }

  getNode(name: string) {
    return this.orNull(() => this.core.readNode({ name }));
  }

  async listNodes(labelSelector?: string) {
    const list = await this.call(() => this.core.listNode({ labelSelector }));
    return list.items;
  }

  patchNode(name: string, patch: unknown, type: PatchType, opts?: WriteOptions) {
    return this.call(() =>
      this.core.patchNode({ name, body: patch, dryRun: dry(opts), fieldManager: 'runbook' }, setHeaderOptions('Content-Type', CONTENT_TYPE[type])),
    );
  }

  getPod(name: string) {
    return this.orNull(() => this.core.readNamespacedPod({ name, namespace: this.namespace }));
  }

  async getSecretKeys(name: string) {
    // Only the key names leave this method: secret values are never handed to the procedures.
    const s = await this.orNull(() => this.core.readNamespacedSecret({ name, namespace: this.namespace }));
    return s ? [...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})] : null;
  }

  async getConfigMapKeys(name: string) {
    const c = await this.orNull(() => this.core.readNamespacedConfigMap({ name, namespace: this.namespace }));
    return c ? [...Object.keys(c.data ?? {}), ...Object.keys(c.binaryData ?? {})] : null;
  }

  async listPodMetrics(labelSelector?: string): Promise<PodMetrics[]> {
    const list = (await this.call(() =>
      this.custom.listNamespacedCustomObject({ group: 'metrics.k8s.io', version: 'v1beta1', namespace: this.namespace, plural: 'pods', labelSelector }),
    )) as { items?: Array<{ metadata?: { name?: string }; timestamp?: string; window?: string; containers?: PodMetrics['containers'] }> };
    return (list.items ?? []).map((m) => ({ name: m.metadata?.name ?? '', timestamp: m.timestamp, window: m.window, containers: m.containers ?? [] }));
  }

  async getLease(name: string) {
    const l = await this.orNull(() => this.coordination.readNamespacedLease({ name, namespace: this.namespace }));
    return l ? fromLease(l) : null;
  }

  async createLease(lease: LeaseRecord) {
    return fromLease(
      await this.call(() => this.coordination.createNamespacedLease({ namespace: this.namespace, body: toLease(lease), fieldManager: 'runbook' })),
    );
  }

  async updateLease(lease: LeaseRecord & { resourceVersion: string }) {
    return fromLease(
      await this.call(() =>
        this.coordination.replaceNamespacedLease({ name: lease.name, namespace: this.namespace, body: toLease(lease), fieldManager: 'runbook' }),
      ),
    );
  }

  async deleteLease(name: string, resourceVersion: string) {
    await this.call(() => this.coordination.deleteNamespacedLease({ name, namespace: this.namespace, body: { preconditions: { resourceVersion } } }));
  }

  async cannotDo(permissions: KubePermission[]) {
    const answers = await Promise.all(
      permissions.map(async (p) => {
        const review = await this.call(() =>
          this.authz.createSelfSubjectAccessReview({
            body: {
              apiVersion: 'authorization.k8s.io/v1',
              kind: 'SelfSubjectAccessReview',
              spec: {
                resourceAttributes: {
                  verb: p.verb,
                  group: p.group,
                  resource: p.resource,
                  subresource: p.subresource,
                  namespace: p.cluster ? undefined : this.namespace,
                },
              },
            },
          }),
        );
        return review.status?.allowed ? null : p;
      }),
    );
    return answers.filter((p): p is KubePermission => p !== null);
  }

  close() {}
}

/** The Kubernetes client of a run (loads @kubernetes/client-node: import this module lazily). */
export async function createKubeClient(target: KubeTarget, env: Record<string, string | undefined>): Promise<KubeClient> {
  return KubeAdapter.create(target, env);
}
