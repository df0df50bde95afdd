import {
  KubeConfig,
  AppsV1Api,
  CoreV1Api,
  AutoscalingV2Api,
  CoordinationV1Api,
  CustomObjectsApi,
  AuthorizationV1Api,
  AuthenticationV1Api,
  Watch,
  PatchStrategy,
  setHeaderOptions,
  ApiException,
  V1MicroTime,
} from '@kubernetes/client-node';
import type { RequestContext, V1ConfigMap, V1Deployment, V2HorizontalPodAutoscaler, V1Lease } from '@kubernetes/client-node';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { createHash, randomBytes } from 'node:crypto';
import {
  KubeApiError,
  apiStatusError,
  describeRequest,
  unreachableError,
  type ExecOptions,
  type ExecResult,
  type KubeClient,
  type KubeEventRecord,
  type KubePermission,
  type KubeTarget,
  type LeaseRecord,
  type PatchType,
  type PodMetrics,
  type PodPortForward,
  type PodWebSocket,
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

/**
 * Turns client-node's exceptions into one line: the request (`PATCH deployments/app in namespace
 * shop`), then the server's own message and status.
 */
function toKubeError(err: unknown, server: string, what?: string): KubeApiError {
  if (err instanceof KubeApiError) return err;
  if (err instanceof ApiException) return apiStatusError(server, what, err.code, err.body);
  return unreachableError(server, what, err);
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
 * A KubeConfig whose API calls share keep-alive connections. client-node makes a new https.Agent for
 * every request, so each call of a command paid its own TCP and TLS handshake (three per `app scaling`);
 * here requests with the same TLS identity reuse one agent, and its idle sockets never hold the process open.
 */
class PooledKubeConfig extends KubeConfig {
  private readonly agents = new Map<string, HttpsAgent>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    // Proxy agents (HTTPS_PROXY, SOCKS) are left as client-node makes them.
    if (fresh instanceof HttpsAgent && fresh.constructor === HttpsAgent) context.setAgent(this.pooled(fresh));
  }

  private pooled(fresh: HttpsAgent): HttpsAgent {
    const o = fresh.options;
    const identity = [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.servername, o.rejectUnauthorized].map((v) => (v === undefined ? '' : String(v)));
    const key = createHash('sha256').update(JSON.stringify(identity)).digest('hex');
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new HttpsAgent({ ...o, keepAlive: true });
      this.agents.set(key, agent);
    }
    fresh.destroy();
    return agent;
  }

  destroyAgents(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

/**
 * Several kubeconfig files merged the way kubectl merges $KUBECONFIG: the first file to define a
 * cluster, user or context name wins, and the current context is the first file's that sets one.
 */
function mergeKubeconfigs(files: string[]): PooledKubeConfig {
  const kc = new PooledKubeConfig();
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
function defaultKubeconfig(env: Record<string, string | undefined>): PooledKubeConfig {
  const home = env.HOME ?? env.USERPROFILE;
  const path = home ? `${home}/.kube/config` : undefined;
  if (path && existsSync(path)) return mergeKubeconfigs([path]);
  const kc = new PooledKubeConfig();
  kc.loadFromDefault();
  return kc;
}

export class KubeAdapter implements KubeClient {
  private constructor(
    private readonly kc: PooledKubeConfig,
    readonly namespace: string,
    readonly context: string,
    readonly server: string,
    private readonly apps: AppsV1Api,
    private readonly core: CoreV1Api,
    private readonly autoscaling: AutoscalingV2Api,
    private readonly coordination: CoordinationV1Api,
    private readonly custom: CustomObjectsApi,
    private readonly authz: AuthorizationV1Api,
    private readonly authn: AuthenticationV1Api,
  ) {}

  static create(target: KubeTarget, env: Record<string, string | undefined>): KubeAdapter {
    const files = target.kubeconfig ? [target.kubeconfig] : (env.KUBECONFIG ?? '').split(':').filter(Boolean);
    const file = files.join(':');
    let kc: PooledKubeConfig;
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
      kc.makeApiClient(AuthenticationV1Api),
    );
  }

  /** One API request; `what` names it in an error (see `req`). */
  private async call<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toKubeError(err, this.server, what);
    }
  }

  /** `PATCH deployments/app in namespace shop`: what a request was, for its error. null namespace: cluster-scoped. */
  private req(verb: string, resource: string, name?: string, namespace: string | null = this.namespace): string {
    return describeRequest(verb, resource, name, namespace);
  }

  private async orNull<T>(fn: () => Promise<T>, what: string): Promise<T | null> {
    try {
      return await this.call(fn, what);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return null;
      throw err;
    }
  }

  getDeployment(name: string) {
    return this.call(() => this.apps.readNamespacedDeployment({ name, namespace: this.namespace }), this.req('GET', 'deployments', name));
  }

  patchDeployment(name: string, patch: unknown, type: PatchType, opts?: WriteOptions) {
    return this.call(
      () =>
        this.apps.patchNamespacedDeployment(
          { name, namespace: this.namespace, body: patch, dryRun: dry(opts), fieldManager: 'runbook' },
          setHeaderOptions('Content-Type', CONTENT_TYPE[type]),
        ),
      this.req(opts?.dryRun ? 'PATCH (dry run)' : 'PATCH', 'deployments', name),
    );
  }

  scaleDeployment(name: string, replicas: number, opts?: WriteOptions) {
    return this.call(
      () =>
        this.apps.patchNamespacedDeploymentScale(
          { name, namespace: this.namespace, body: { spec: { replicas } }, dryRun: dry(opts), fieldManager: 'runbook' },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        ),
      this.req(opts?.dryRun ? 'PATCH (dry run)' : 'PATCH', 'deployments', `${name}/scale`),
    );
  }

  watchDeployment(name: string, onEvent: (ev: WatchEvent<V1Deployment>) => boolean | void, signal: AbortSignal) {
    return this.watchOne<V1Deployment>(
      {
        path: `/apis/apps/v1/namespaces/${this.namespace}/deployments`,
        resource: 'deployments',
        kind: 'Deployment',
        apiVersion: 'apps/v1',
        name,
        namespace: this.namespace,
      },
      (fieldSelector) => this.apps.listNamespacedDeployment({ namespace: this.namespace, fieldSelector }),
      onEvent,
      signal,
    );
  }

  /**
   * List, then watch from the list's resourceVersion (not the object's, which may be long compacted),
   * as kubectl's `rollout status` does. A watch the server ends is resumed from the last version seen
   * (bookmarks keep it fresh); 410 Gone means that version is compacted: list again. Only repeated
   * failures of other kinds give up.
   */
  private async watchOne<T extends { apiVersion?: string; kind?: string }>(
    what: { path: string; resource: string; kind: string; apiVersion: string; name: string; namespace: string },
    list: (fieldSelector: string) => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
    onEvent: (ev: WatchEvent<T>) => boolean | void,
    signal: AbortSignal,
  ): Promise<void> {
    const watch = new Watch(this.kc);
    const { name } = what;
    const fieldSelector = `metadata.name=${name}`;
    let failures = 0;
    let resourceVersion: string | undefined;
    let denied: number | undefined;
    while (!signal.aborted) {
      if (resourceVersion === undefined) {
        const listed = await this.call(() => list(fieldSelector), this.req('LIST', what.resource, undefined, what.namespace));
        const current = listed.items[0];
        if (!current) throw new KubeApiError(`${what.kind.toLowerCase()} ${name} not found in namespace ${what.namespace} (${this.server})`, 404, 'NotFound');
        current.apiVersion ??= what.apiVersion;
        current.kind ??= what.kind;
        if (onEvent({ type: 'ADDED', object: current }) === true) return;
        resourceVersion = listed.metadata?.resourceVersion;
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
            what.path,
            { fieldSelector, resourceVersion, allowWatchBookmarks: true },
            (phase, obj: { code?: number; metadata?: { resourceVersion?: string } }) => {
              if (settled) return;
              if (phase === 'ERROR') return finish(obj?.code === 410 ? 'gone' : 'error');
              if (obj?.metadata?.resourceVersion) resourceVersion = obj.metadata.resourceVersion;
              if (phase === 'BOOKMARK') return;
              failures = 0;
              if (onEvent({ type: phase as WatchEvent<T>['type'], object: obj as T }) === true) finish('done');
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
          `Kubernetes API at ${this.server}: ${denied === 403 ? 'forbidden' : 'unauthorized'}: watch ${what.resource} in namespace ${what.namespace} (${denied})`,
          denied,
        );
      if (outcome === 'gone') {
        resourceVersion = undefined;
      } else if (outcome === 'error') {
        failures += 1;
        if (failures > 5) throw new KubeApiError(`watch on ${what.kind.toLowerCase()}/${name} at ${this.server} keeps failing`, 0);
        resourceVersion = undefined;
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** failures)));
      }
    }
  }

  async listPods(labelSelector?: string) {
    const list = await this.call(() => this.core.listNamespacedPod({ namespace: this.namespace, labelSelector }), this.req('LIST', 'pods'));
    return list.items;
  }

  async listReplicaSets(labelSelector?: string) {
    const list = await this.call(() => this.apps.listNamespacedReplicaSet({ namespace: this.namespace, labelSelector }), this.req('LIST', 'replicasets'));
    return list.items;
  }

  async readPodLog(pod: string, opts: { container?: string; tailLines?: number; previous?: boolean; sinceSeconds?: number; timestamps?: boolean } = {}) {
    const text = await this.call(
      () =>
        this.core.readNamespacedPodLog({
          name: pod,
          namespace: this.namespace,
          container: opts.container,
          tailLines: opts.tailLines,
          previous: opts.previous,
          sinceSeconds: opts.sinceSeconds,
          timestamps: opts.timestamps,
        }),
      this.req('GET', 'pods', `${pod}/log`),
    );
    return typeof text === 'string' ? text : String(text ?? '');
  }

  async findHpasFor(deployment: string) {
    const list = await this.call(
      () => this.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: this.namespace }),
      this.req('LIST', 'horizontalpodautoscalers'),
    );
    return list.items.filter((h) => h.spec?.scaleTargetRef?.kind === 'Deployment' && h.spec.scaleTargetRef.name === deployment);
  }

  createHpa(hpa: V2HorizontalPodAutoscaler, opts?: WriteOptions) {
    return this.call(
      () => this.autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace: this.namespace, body: hpa, dryRun: dry(opts), fieldManager: 'runbook' }),
      this.req(opts?.dryRun ? 'POST (dry run)' : 'POST', 'horizontalpodautoscalers', hpa.metadata?.name),
    );
  }

  patchHpaSpec(name: string, spec: V2HorizontalPodAutoscaler['spec'], opts?: WriteOptions) {
    return this.call(
      () =>
        this.autoscaling.patchNamespacedHorizontalPodAutoscaler(
          { name, namespace: this.namespace, body: { spec }, dryRun: dry(opts), fieldManager: 'runbook' },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        ),
      this.req(opts?.dryRun ? 'PATCH (dry run)' : 'PATCH', 'horizontalpodautoscalers', name),
    );
  }

  async deleteHpa(name: string) {
    await this.call(
      () => this.autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name, namespace: this.namespace }),
      this.req('DELETE', 'horizontalpodautoscalers', name),
    );
  }

  async listHpas() {
    const list = await this.call(
      () => this.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: this.namespace }),
      this.req('LIST', 'horizontalpodautoscalers'),
    );
    return list.items;
  }

  async listEvents(fieldSelector?: string) {
    const list = await this.call(() => this.core.listNamespacedEvent({ namespace: this.namespace, fieldSelector }), this.req('LIST', 'events'));
    return list.items;
  }

  async recordEvent(ev: KubeEventRecord) {
    const namespace = ev.object.namespace ?? 'default';
    const now = new Date();
    // Named as client-go names its Events (object.timestamp), with a random tail so two in one instant never collide.
    const name = `${ev.object.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
    const host = hostname().slice(0, 128);
    await this.call(
      () =>
        this.core.createNamespacedEvent({
          namespace,
          body: {
            apiVersion: 'v1',
            kind: 'Event',
            metadata: { name, namespace },
            involvedObject: {
              apiVersion: ev.object.apiVersion,
              kind: ev.object.kind,
              name: ev.object.name,
              namespace: ev.object.namespace,
              uid: ev.object.uid,
            },
            type: ev.type,
            reason: ev.reason,
            message: ev.message,
            action: (ev.action ?? ev.reason).slice(0, 128),
            source: { component: 'runbook', host },
            reportingComponent: 'runbook',
            reportingInstance: host,
            firstTimestamp: now,
            lastTimestamp: now,
            eventTime: new V1MicroTime(now.getTime()),
            count: 1,
          },
        }),
      this.req('POST', 'events', undefined, namespace),
    );
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
          res.on('end', () => reject(apiStatusError(this.server, this.req('GET', 'pods', `${pod}/log`), res.statusCode ?? 0, body)));
          return;
        }
        pipeline(res, out).then(resolve, (err) => reject(toKubeError(err, this.server)));
      });
      req.on('error', (err) => reject(toKubeError(err, this.server, this.req('GET', 'pods', `${pod}/log`))));
      req.end();
    });
  }

  getNode(name: string) {
    return this.orNull(() => this.core.readNode({ name }), this.req('GET', 'nodes', name, null));
  }

  async listNodes(labelSelector?: string) {
    const list = await this.call(() => this.core.listNode({ labelSelector }), this.req('LIST', 'nodes', undefined, null));
    return list.items;
  }

  patchNode(name: string, patch: unknown, type: PatchType, opts?: WriteOptions) {
    return this.call(
      () => this.core.patchNode({ name, body: patch, dryRun: dry(opts), fieldManager: 'runbook' }, setHeaderOptions('Content-Type', CONTENT_TYPE[type])),
      this.req(opts?.dryRun ? 'PATCH (dry run)' : 'PATCH', 'nodes', name, null),
    );
  }

  getPod(name: string) {
    return this.orNull(() => this.core.readNamespacedPod({ name, namespace: this.namespace }), this.req('GET', 'pods', name));
  }

  async getSecretKeys(name: string) {
    // Only the key names leave this method: secret values are never handed to the procedures.
    const s = await this.orNull(() => this.core.readNamespacedSecret({ name, namespace: this.namespace }), this.req('GET', 'secrets', name));
    return s ? [...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})] : null;
  }

  async getConfigMapKeys(name: string) {
    const c = await this.orNull(() => this.core.readNamespacedConfigMap({ name, namespace: this.namespace }), this.req('GET', 'configmaps', name));
    return c ? [...Object.keys(c.data ?? {}), ...Object.keys(c.binaryData ?? {})] : null;
  }

  async listPodMetrics(labelSelector?: string): Promise<PodMetrics[]> {
    const list = (await this.call(
      () => this.custom.listNamespacedCustomObject({ group: 'metrics.k8s.io', version: 'v1beta1', namespace: this.namespace, plural: 'pods', labelSelector }),
      this.req('LIST', 'pods.metrics.k8s.io'),
    )) as { items?: Array<{ metadata?: { name?: string }; timestamp?: string; window?: string; containers?: PodMetrics['containers'] }> };
    return (list.items ?? []).map((m) => ({ name: m.metadata?.name ?? '', timestamp: m.timestamp, window: m.window, containers: m.containers ?? [] }));
  }

  async getLease(name: string) {
    const l = await this.orNull(() => this.coordination.readNamespacedLease({ name, namespace: this.namespace }), this.req('GET', 'leases', name));
    return l ? fromLease(l) : null;
  }

  async createLease(lease: LeaseRecord) {
    return fromLease(
      await this.call(
        () => this.coordination.createNamespacedLease({ namespace: this.namespace, body: toLease(lease), fieldManager: 'runbook' }),
        this.req('POST', 'leases', lease.name),
      ),
    );
  }

  async updateLease(lease: LeaseRecord & { resourceVersion: string }) {
    return fromLease(
      await this.call(
        () => this.coordination.replaceNamespacedLease({ name: lease.name, namespace: this.namespace, body: toLease(lease), fieldManager: 'runbook' }),
        this.req('PUT', 'leases', lease.name),
      ),
    );
  }

  async deleteLease(name: string, resourceVersion: string) {
    await this.call(
      () => this.coordination.deleteNamespacedLease({ name, namespace: this.namespace, body: { preconditions: { resourceVersion } } }),
      this.req('DELETE', 'leases', name),
    );
  }

  async cannotDo(permissions: KubePermission[], namespace = this.namespace) {
    const answers = await Promise.all(
      permissions.map(async (p) => {
        const review = await this.call(
          () =>
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
                    namespace: p.cluster ? undefined : (p.namespace ?? namespace),
                  },
                },
              },
            }),
          this.req('POST', 'selfsubjectaccessreviews.authorization.k8s.io', undefined, null),
        );
        return review.status?.allowed ? null : p;
      }),
    );
    return answers.filter((p): p is KubePermission => p !== null);
  }

  async whoAmI() {
    const review = await this.call(
      () => this.authn.createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } }),
      this.req('POST', 'selfsubjectreviews.authentication.k8s.io', undefined, null),
    );
    const user = review.status?.userInfo;
    if (!user?.username) throw new KubeApiError(`Kubernetes API at ${this.server}: the SelfSubjectReview names no user`, 0);
    return { username: user.username, groups: user.groups ?? [] };
  }

  getConfigMap(namespace: string, name: string) {
    return this.orNull(() => this.core.readNamespacedConfigMap({ name, namespace }), this.req('GET', 'configmaps', name, namespace));
  }

  async listConfigMaps(namespace: string, labelSelector?: string) {
    const list = await this.call(() => this.core.listNamespacedConfigMap({ namespace, labelSelector }), this.req('LIST', 'configmaps', undefined, namespace));
    return list.items;
  }

  createConfigMap(namespace: string, cm: V1ConfigMap, opts?: WriteOptions) {
    return this.call(
      () =>
        this.core.createNamespacedConfigMap({
          namespace,
          body: { apiVersion: 'v1', kind: 'ConfigMap', ...cm, metadata: { ...cm.metadata, namespace } },
          dryRun: dry(opts),
          fieldManager: 'runbook',
        }),
      this.req(opts?.dryRun ? 'POST (dry run)' : 'POST', 'configmaps', cm.metadata?.name, namespace),
    );
  }

  patchConfigMap(namespace: string, name: string, patch: Record<string, unknown>, opts?: WriteOptions & { resourceVersion?: string }) {
    // A merge patch carrying metadata.resourceVersion is a precondition: the server answers 409 when it moved on.
    const meta = (patch.metadata ?? {}) as Record<string, unknown>;
    const body = opts?.resourceVersion ? { ...patch, metadata: { ...meta, resourceVersion: opts.resourceVersion } } : patch;
    return this.call(
      () =>
        this.core.patchNamespacedConfigMap(
          { name, namespace, body, dryRun: dry(opts), fieldManager: 'runbook' },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        ),
      this.req(opts?.dryRun ? 'PATCH (dry run)' : 'PATCH', 'configmaps', name, namespace),
    );
  }

  async deleteConfigMap(namespace: string, name: string, resourceVersion?: string) {
    await this.call(
      () => this.core.deleteNamespacedConfigMap({ name, namespace, body: resourceVersion ? { preconditions: { resourceVersion } } : undefined }),
      this.req('DELETE', 'configmaps', name, namespace),
    );
  }

  watchConfigMap(namespace: string, name: string, onEvent: (ev: WatchEvent<V1ConfigMap>) => boolean | void, signal: AbortSignal) {
    return this.watchOne<V1ConfigMap>(
      { path: `/api/v1/namespaces/${namespace}/configmaps`, resource: 'configmaps', kind: 'ConfigMap', apiVersion: 'v1', name, namespace },
      (fieldSelector) => this.core.listNamespacedConfigMap({ namespace, fieldSelector }),
      onEvent,
      signal,
    );
  }

  async execInPod(pod: string, container: string, command: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const q = new URLSearchParams();
    for (const c of command) q.append('command', c);
    q.set('container', container);
    q.set('stdout', 'true');
    q.set('stderr', 'true');
    const path = `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods/${encodeURIComponent(pod)}/exec?${q}`;
    const signal = streamSignal(opts);
    const ws = await this.openStream(path, ['v5.channel.k8s.io', 'v4.channel.k8s.io'], this.req('GET', 'pods', `${pod}/exec`), signal);
    return runExec(ws, opts, signal, this.server);
  }

  async portForward(pod: string, port: number): Promise<PodPortForward> {
    const connect = (signal?: AbortSignal) => this.forwardedConnection(pod, port, signal);
    return {
      pod,
      port,
      async httpGet(path, o = {}) {
        const signal = streamSignal(o);
        const conn = await connect(signal);
        return httpGetOver(conn, port, path, signal);
      },
      async webSocket(path, o = {}) {
        const signal = streamSignal(o);
        const conn = await connect(signal);
        return webSocketOver(conn, port, path, signal);
      },
    };
  }

  /** One TCP connection to the pod's port, as a stream (v4 channel protocol: data on 0, errors on 1). */
  private async forwardedConnection(pod: string, port: number, signal?: AbortSignal): Promise<Duplex> {
    const path = `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods/${encodeURIComponent(pod)}/portforward?ports=${port}`;
    const ws = await this.openStream(path, ['v4.channel.k8s.io'], this.req('GET', 'pods', `${pod}/portforward`), signal);
    return forwardedStream(ws, `pod ${pod} port ${port}`);
  }

  /** A WebSocket to the API server with the kubeconfig's credentials; an HTTP answer becomes a KubeApiError. */
  private async openStream(path: string, protocols: string[], what: string, signal?: AbortSignal): Promise<WsSocket> {
    const WebSocket = await loadWebSocket();
    const options: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(options);
    const url = `${this.server.replace(/\/$/, '').replace(/^http/, 'ws')}${path}`;
    return new Promise<WsSocket>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const ws = new WebSocket(url, protocols, { ...options, perMessageDeflate: false, handshakeTimeout: 30_000 });
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        ws.terminate();
        reject(err);
      };
      const onAbort = () => fail(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      ws.on('open', () => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        resolve(ws);
      });
      ws.on('unexpected-response', (_req: ClientRequest, res: IncomingMessage) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += body.length < 4096 ? c : ''));
        res.on('end', () => fail(apiStatusError(this.server, what, res.statusCode ?? 0, body)));
        res.on('error', (err) => fail(toKubeError(err, this.server, what)));
      });
      ws.on('error', (err: Error) => fail(toKubeError(err, this.server, what)));
    });
  }

  close() {
    this.kc.destroyAgents();
  }
}

// --- exec and port-forward over WebSocket --------------------------------------------------------
// Over `ws` directly (client-node's Exec and PortForward classes ignore backpressure, drop errors
// after the handshake, and on a v5 close frame end process.stdout): the kubeconfig's credentials
// come from KubeConfig.applyToHTTPSOptions, as client-node's own handler takes them.

/** The part of a `ws` WebSocket used here (the package ships no type declarations). */
interface WsSocket {
  readonly readyState: number;
  readonly protocol: string;
  send(data: Buffer | string, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  on(event: 'open', listener: () => void): this;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'unexpected-response', listener: (req: ClientRequest, res: IncomingMessage) => void): this;
}
type WsConstructor = new (url: string, protocols: string[], options: Record<string, unknown>) => WsSocket;

let wsConstructor: WsConstructor | undefined;
/** `ws` (a dependency of @kubernetes/client-node), loaded only by the commands that exec or forward. */
async function loadWebSocket(): Promise<WsConstructor> {
  // @ts-expect-error -- ws ships no type declarations (no @types/ws here); it is used through WsSocket.
  const mod = (await import('ws')) as { WebSocket?: WsConstructor; default?: WsConstructor };
  wsConstructor ??= mod.WebSocket ?? mod.default;
  if (!wsConstructor) throw new Error('the ws package has no WebSocket export');
  return wsConstructor;
}

const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;
const STDERR_KEEP = 64 * 1024;

function streamSignal(o: { signal?: AbortSignal; timeoutMs?: number }): AbortSignal | undefined {
  const timeout = o.timeoutMs ? AbortSignal.timeout(o.timeoutMs) : undefined;
  if (o.signal && timeout) return AbortSignal.any([o.signal, timeout]);
  return o.signal ?? timeout;
}

interface ExecStatus {
  status?: string;
  message?: string;
  reason?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

/** The exit code a status carries: the kubelet's NonZeroExitCode cause, or kwok's "exit status N" in its message. */
function exitCodeOf(st: ExecStatus): number | null {
  if (st.status === 'Success') return 0;
  const cause = st.details?.causes?.find((c) => c.reason === 'ExitCode');
  if (st.reason === 'NonZeroExitCode' && cause?.message && /^\d+$/.test(cause.message)) return Number(cause.message);
  const m = /: exit status (\d+)\s*$/.exec(st.message ?? '');
  return m ? Number(m[1]) : null;
}

function runExec(ws: WsSocket, opts: ExecOptions, signal: AbortSignal | undefined, server: string): Promise<ExecResult> {
  const maxBytes = opts.maxBytes ?? 16 * 1024 * 1024;
  const out = opts.stdout;
  const chunks: Buffer[] = [];
  let bytes = 0;
  let stderr = '';
  let status: ExecStatus | undefined;
  return new Promise<ExecResult>((resolve, reject) => {
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      ws.terminate();
      finish(() => reject(signal!.reason));
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let paused = false;
    const onDrain = () => {
      paused = false;
      ws.resume();
    };
    ws.on('message', (data: Buffer) => {
      if (done || data.length === 0) return;
      const channel = data[0];
      const payload = data.subarray(1);
      if (channel === STDOUT) {
        bytes += payload.length;
        if (out) {
          if (!out.write(payload) && !paused) {
            paused = true;
            ws.pause();
            out.once('drain', onDrain);
          }
        } else if (bytes > maxBytes) {
          ws.terminate();
          finish(() => reject(new Error(`the command printed more than ${maxBytes} bytes`)));
        } else chunks.push(Buffer.from(payload));
      } else if (channel === STDERR) {
        if (stderr.length < STDERR_KEEP) stderr += payload.toString('utf8');
      } else if (channel === STATUS) {
        try {
          status = JSON.parse(payload.toString('utf8')) as ExecStatus;
        } catch {
          status = { status: 'Failure', message: payload.toString('utf8').slice(0, 500) };
        }
      }
      // Anything else is CLOSE (v5, 255): a stream the server sends no more on; status and close follow.
    });
    ws.on('error', (err: Error) => finish(() => reject(toKubeError(err, server))));
    ws.on('close', (code: number) => {
      finish(() => {
        const stdout = Buffer.concat(chunks);
        if (!status) {
          resolve({
            exitCode: null,
            stdout,
            stderr: stderr.slice(0, STDERR_KEEP),
            bytes,
            error: `the exec stream closed before the command's status (WebSocket close ${code})`,
          });
          return;
        }
        const exitCode = exitCodeOf(status);
        resolve({
          exitCode,
          stdout,
          stderr: stderr.slice(0, STDERR_KEEP),
          bytes,
          ...(status.status === 'Success' ? {} : { error: status.message ?? status.reason ?? 'the command failed' }),
        });
      });
    });
  });
}

/** The forwarded connection as a Duplex: what the pod's port sends on channel 0, errors on channel 1. */
function forwardedStream(ws: WsSocket, what: string): Duplex {
  // Each channel's first frame starts with the port number (2 bytes, little endian).
  const skipPort = [true, true];
  let errorText = '';
  const conn = new Duplex({
    read() {
      ws.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (ws.readyState !== 1) return cb(new Error(`the port-forward to ${what} is closed`));
      ws.send(Buffer.concat([Buffer.from([0]), chunk]), (err) => cb(err ?? null));
    },
    // The channel protocol has no half-close: ending this side (ws does once the close handshake is
    // done) closes the whole connection, as there is nothing left to read that anyone waits for.
    final(cb) {
      if (ws.readyState <= 1) ws.close();
      cb();
    },
    destroy(err, cb) {
      if (ws.readyState <= 1) ws.close();
      cb(err);
    },
  });
  ws.on('message', (data: Buffer) => {
    if (data.length === 0) return;
    const channel = data[0];
    let payload = data.subarray(1);
    if (channel > 1) return;
    if (skipPort[channel]) {
      skipPort[channel] = false;
      payload = payload.subarray(2);
    }
    if (payload.length === 0) return;
    if (channel === 1) errorText += payload.toString('utf8');
    else if (!conn.push(Buffer.from(payload))) ws.pause();
  });
  ws.on('error', (err: Error) => conn.destroy(err));
  ws.on('close', () => {
    if (errorText) conn.destroy(new Error(`port-forward to ${what}: ${errorText.trim().slice(0, 300)}`));
    else conn.push(null);
  });
  // Callers that set socket options on it (http, ws) find them: a forwarded stream has none to set.
  return Object.assign(conn, { setTimeout: () => conn, setNoDelay: () => conn, setKeepAlive: () => conn, ref: () => conn, unref: () => conn });
}

/**
 * A one-shot HTTP/1.1 GET over a forwarded connection. The answer is complete at its Content-Length
 * (or last chunk, or the end): the channel protocol cannot half-close, so the pod side may keep the
 * connection open after answering, and it is closed from here.
 */
function httpGetOver(conn: Duplex, port: number, path: string, signal?: AbortSignal): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      conn.destroy();
      fn();
    };
    const onAbort = () => settle(() => reject(signal!.reason));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    /** The answer, once all of it is here (or `ended`: whatever came). */
    const parse = (ended: boolean): { status: number; body: string } | null => {
      const head = buf.indexOf('\r\n\r\n');
      if (head < 0) return null;
      const headers = buf.subarray(0, head).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(headers);
      if (!m) return null;
      const body = buf.subarray(head + 4);
      const length = /\r\ncontent-length: *(\d+)/i.exec(headers);
      if (length) return body.length >= Number(length[1]) ? { status: Number(m[1]), body: body.subarray(0, Number(length[1])).toString('utf8') } : null;
      if (/\r\ntransfer-encoding: *chunked/i.test(headers)) {
        const text = body.toString('latin1');
        return /(^|\r\n)0\r\n\r\n$/.test(text) || ended ? { status: Number(m[1]), body: Buffer.from(unchunk(text), 'latin1').toString('utf8') } : null;
      }
      return ended ? { status: Number(m[1]), body: body.toString('utf8') } : null;
    };
    conn.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const answer = parse(false);
      if (answer) settle(() => resolve(answer));
    });
    conn.on('error', (err) => settle(() => reject(err)));
    conn.on('end', () => {
      const answer = parse(true);
      settle(() =>
        answer
          ? resolve(answer)
          : reject(new Error(`no HTTP answer from port ${port}${buf.length ? `: ${JSON.stringify(buf.subarray(0, 80).toString('latin1'))}` : ''}`)),
      );
    });
    conn.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`);
  });
}

function unchunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return out;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

/** A WebSocket client (ws) over a forwarded connection: the handshake and frames travel inside it. */
async function webSocketOver(conn: Duplex, port: number, path: string, signal?: AbortSignal): Promise<PodWebSocket> {
  const WebSocket = await loadWebSocket();
  const ws = await new Promise<WsSocket>((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, [], {
      createConnection: () => conn,
      perMessageDeflate: false,
      handshakeTimeout: 30_000,
      maxPayload: 1024 * 1024 * 1024,
    });
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      socket.terminate();
      reject(err);
    };
    const onAbort = () => fail(signal!.reason);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('open', () => {
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      resolve(socket);
    });
    socket.on('unexpected-response', (_req: ClientRequest, res: IncomingMessage) =>
      fail(new Error(`the WebSocket at port ${port}${path} answered HTTP ${res.statusCode}`)),
    );
    socket.on('error', (err: Error) => fail(err));
  });
  let closeReason = '';
  const closed = new Promise<string>((resolve) => {
    ws.on('close', (code: number, reason: Buffer) => resolve(closeReason || `closed (${code}${reason.length ? ` ${reason.toString('utf8')}` : ''})`));
  });
  ws.on('error', (err: Error) => (closeReason ||= err.message));
  return {
    send: (text) => ws.send(text),
    onMessage: (listener) => void ws.on('message', (data: Buffer) => listener(data.toString('utf8'))),
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    closed,
    close: () => ws.close(),
  };
}

/** The Kubernetes client of a run (loads @kubernetes/client-node: import this module lazily). */
export async function createKubeClient(target: KubeTarget, env: Record<string, string | undefined>): Promise<KubeClient> {
  return KubeAdapter.create(target, env);
}
