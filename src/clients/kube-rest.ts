import { readFileSync, existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createSecureContext } from 'node:tls';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import {
  KubeApiError,
  apiStatusError,
  describeRequest,
  unreachableError,
  type KubeClient,
  type KubeTarget,
  type V1Deployment,
  type V1Pod,
  type V1ReplicaSet,
  type V2HorizontalPodAutoscaler,
  type CoreV1Event,
  type V1Node,
} from './kube.js';

// The reads a read command makes (`app scaling`, `app status`, `pod diagnose` …) go straight to the
// API server over HTTPS with the kubeconfig's credentials, without @kubernetes/client-node: loading
// that SDK and building its requests was most of such a command's time (bench/read-commands.mjs).
// Only kubeconfigs whose credentials are fully understood here take this path (certificates,
// bearer tokens); exec plugins, auth providers, basic auth, impersonation, proxies and in-cluster
// credentials go through the SDK for everything. Every other method, and every write, is the SDK
// adapter's, loaded on first use. The objects are the SDK's shapes: test/clients/kube-rest.int.test.ts
// checks them against the SDK's answers from a real API server.

/** The one context a run talks to, as the kubeconfig gives it. */
export interface DirectTarget {
  context: string;
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  servername?: string;
  /** insecure-skip-tls-verify */
  insecure: boolean;
}

type Doc = Record<string, unknown>;
const isDoc = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);

interface Named {
  name: string;
  body: Doc;
  /** The kubeconfig file it came from: relative paths in it are relative to that file. */
  dir: string;
}

function entries(doc: Doc, list: string, field: string, dir: string): Named[] | undefined {
  const items = doc[list] ?? [];
  if (!Array.isArray(items)) return undefined;
  const out: Named[] = [];
  for (const it of items) {
    if (!isDoc(it) || typeof it.name !== 'string' || !isDoc(it[field])) return undefined;
    out.push({ name: it.name, body: it[field], dir });
  }
  return out;
}

const CLUSTER_KEYS = new Set(['server', 'certificate-authority', 'certificate-authority-data', 'insecure-skip-tls-verify', 'tls-server-name', 'extensions']);
const USER_KEYS = new Set(['client-certificate', 'client-certificate-data', 'client-key', 'client-key-data', 'token', 'token-file', 'extensions']);

function fileOrData(file: unknown, data: unknown, dir: string): Buffer | undefined | null {
  if (file !== undefined && file !== null && file !== '') {
    if (typeof file !== 'string') return null;
    return readFileSync(isAbsolute(file) ? file : join(dir, file));
  }
  if (data !== undefined && data !== null && data !== '') return typeof data === 'string' ? Buffer.from(data, 'base64') : null;
  return undefined;
}

/**
 * The context to talk to, read from the kubeconfig files the way the SDK adapter reads them (the
 * first file to name a cluster, user or context wins; the current context is the first file's),
 * or null when anything in it is beyond this path: then the SDK does all of it, errors included.
 */
export async function directTarget(target: KubeTarget, env: Record<string, string | undefined>): Promise<DirectTarget | null> {
  let files = target.kubeconfig ? [target.kubeconfig] : (env.KUBECONFIG ?? '').split(':').filter(Boolean);
  if (!files.length) {
    const home = env.HOME ?? env.USERPROFILE;
    if (!home || !existsSync(`${home}/.kube/config`)) return null; // in-cluster credentials: the SDK's
    files = [`${home}/.kube/config`];
  }
  try {
    const { load } = await import('js-yaml');
    const clusters = new Map<string, Named>();
    const users = new Map<string, Named>();
    const contexts = new Map<string, Named>();
    let current: string | undefined;
    for (const file of files) {
      const doc = load(readFileSync(file, 'utf8'));
      if (!isDoc(doc)) return null;
      const dir = dirname(file);
      const cs = entries(doc, 'clusters', 'cluster', dir);
      const us = entries(doc, 'users', 'user', dir);
      const xs = entries(doc, 'contexts', 'context', dir);
      if (!cs || !us || !xs) return null;
      for (const c of cs) if (!clusters.has(c.name)) clusters.set(c.name, c);
      for (const u of us) if (!users.has(u.name)) users.set(u.name, u);
      for (const x of xs) if (!contexts.has(x.name)) contexts.set(x.name, x);
      if (current === undefined && typeof doc['current-context'] === 'string' && doc['current-context']) current = doc['current-context'];
    }
    const name = target.context ?? current;
    const ctx = name === undefined ? undefined : contexts.get(name);
    if (name === undefined || !ctx || typeof ctx.body.cluster !== 'string') return null;
    const cluster = clusters.get(ctx.body.cluster);
    const user = typeof ctx.body.user === 'string' ? users.get(ctx.body.user) : undefined;
    if (!cluster || (ctx.body.user !== undefined && !user)) return null;
    const c = cluster.body;
    const u = user?.body ?? {};
    if (![...Object.keys(c)].every((k) => CLUSTER_KEYS.has(k)) || ![...Object.keys(u)].every((k) => USER_KEYS.has(k))) return null;
    if (typeof c.server !== 'string' || !/^https?:\/\//.test(c.server)) return null;
    const ca = fileOrData(c['certificate-authority'], c['certificate-authority-data'], cluster.dir);
    const cert = fileOrData(u['client-certificate'], u['client-certificate-data'], user?.dir ?? '');
    const key = fileOrData(u['client-key'], u['client-key-data'], user?.dir ?? '');
    if (ca === null || cert === null || key === null) return null;
    let token: string | undefined;
    if (typeof u.token === 'string' && u.token) token = u.token;
    else if (typeof u['token-file'] === 'string' && u['token-file']) token = readFileSync(u['token-file'], 'utf8');
    else if (u.token !== undefined || u['token-file'] !== undefined) return null;
    if (c['tls-server-name'] !== undefined && typeof c['tls-server-name'] !== 'string') return null;
    return {
      context: name,
      server: c.server.replace(/\/$/, ''),
      ca,
      cert,
      key,
      token,
      servername: c['tls-server-name'] as string | undefined,
      insecure: c['insecure-skip-tls-verify'] === true,
    };
  } catch {
    // Unreadable or unparseable: the SDK reads it again and says what is wrong (exit 2).
    return null;
  }
}

/**
 * The fields the SDK gives as Date (format date-time in the API's schema; MicroTime ones such as an
 * Event's eventTime it leaves strings) in the objects read here; test/clients/kube-rest.test.ts
 * derives the same set from the SDK's models.
 */
export const DATE_FIELDS = new Set([
  'creationTimestamp',
  'deletionTimestamp',
  'finishedAt',
  'firstTimestamp',
  'lastHeartbeatTime',
  'lastProbeTime',
  'lastScaleTime',
  'lastTimestamp',
  'lastTransitionTime',
  'lastUpdateTime',
  'startTime',
  'startedAt',
  'time',
  'timeAdded',
]);

/** Maps whose keys are anyone's names, not the schema's: a label called `time` stays a string. */
const FREE_FORM = new Set([
  'labels',
  'annotations',
  'nodeSelector',
  'matchLabels',
  'fieldsV1',
  'data',
  'binaryData',
  'limits',
  'requests',
  'capacity',
  'allocatable',
]);

/** Dates as the SDK gives them; `continue` as its ListMeta names it (`_continue`). */
export function revive(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i]);
    return value;
  }
  if (!isDoc(value)) return value;
  for (const k of Object.keys(value)) {
    const v = value[k];
    if (FREE_FORM.has(k)) continue;
    if (typeof v === 'string') {
      if (DATE_FIELDS.has(k)) value[k] = new Date(v);
    } else if (typeof v === 'object' && v !== null) revive(v);
  }
  return value;
}

/** GETs over one keep-alive connection; errors worded as the SDK adapter words them. */
class DirectReads {
  private readonly agent: HttpsAgent | HttpAgent;
  private readonly send: typeof httpsRequest;

  constructor(private readonly t: DirectTarget) {
    const tls = t.server.startsWith('https:');
    this.send = tls ? httpsRequest : httpRequest;
    // One secure context for every connection: parallel reads open several, and each would parse
    // the CA, certificate and key again.
    this.agent = tls
      ? new HttpsAgent({
          keepAlive: true,
          secureContext: createSecureContext({ ca: t.ca, cert: t.cert, key: t.key }),
          servername: t.servername,
          ...(t.insecure ? { rejectUnauthorized: false } : {}),
        })
      : new HttpAgent({ keepAlive: true });
  }

  get<T>(path: string, query: Record<string, string | undefined>, what: string): Promise<T> {
    const qs = Object.entries(query)
      .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('&');
    const url = new URL(`${this.t.server}${path}${qs ? `?${qs}` : ''}`);
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.t.token) headers.Authorization = `Bearer ${this.t.token}`;
    const options: RequestOptions = { method: 'GET', agent: this.agent, headers };
    return new Promise<T>((resolve, reject) => {
      const req = this.send(url, options, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(unreachableError(this.t.server, what, err)));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) {
            try {
              resolve(revive(JSON.parse(body)) as T);
            } catch {
              reject(new KubeApiError(`Kubernetes API at ${this.t.server}: ${what}: the answer is not JSON (${code})`, code));
            }
            return;
          }
          reject(apiStatusError(this.t.server, what, code, body));
        });
      });
      req.on('error', (err) => reject(unreachableError(this.t.server, what, err)));
      req.end();
    });
  }

  close() {
    this.agent.destroy();
  }
}

type Full = Promise<KubeClient>;
const enc = encodeURIComponent;

/**
 * A KubeClient whose reads of deployments, pods, replica sets, autoscalers, events and nodes are
 * direct GETs; everything else is the SDK adapter's (made once, on first use, from the same target).
 */
class KubeRest implements KubeClient {
  readonly context: string;
  readonly server: string;
  private readonly http: DirectReads;
  private fullClient?: Full;

  constructor(
    t: DirectTarget,
    readonly namespace: string,
    private readonly makeFull: () => Full,
  ) {
    this.context = t.context;
    this.server = t.server;
    this.http = new DirectReads(t);
  }

  private full(): Full {
    return (this.fullClient ??= this.makeFull());
  }

  private req(verb: string, resource: string, name?: string, namespace: string | null = this.namespace): string {
    return describeRequest(verb, resource, name, namespace);
  }

  private async orNull<T>(p: Promise<T>): Promise<T | null> {
    try {
      return await p;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return null;
      throw err;
    }
  }

  private ns(group: string, resource: string): string {
    return `${group}/namespaces/${enc(this.namespace)}/${resource}`;
  }

  getDeployment(name: string) {
    return this.http.get<V1Deployment>(`${this.ns('/apis/apps/v1', 'deployments')}/${enc(name)}`, {}, this.req('GET', 'deployments', name));
  }

  async listPods(labelSelector?: string) {
    return (await this.http.get<{ items: V1Pod[] }>(this.ns('/api/v1', 'pods'), { labelSelector }, this.req('LIST', 'pods'))).items;
  }

  async listReplicaSets(labelSelector?: string) {
    return (await this.http.get<{ items: V1ReplicaSet[] }>(this.ns('/apis/apps/v1', 'replicasets'), { labelSelector }, this.req('LIST', 'replicasets'))).items;
  }

  async listHpas() {
    const path = this.ns('/apis/autoscaling/v2', 'horizontalpodautoscalers');
    return (await this.http.get<{ items: V2HorizontalPodAutoscaler[] }>(path, {}, this.req('LIST', 'horizontalpodautoscalers'))).items;
  }

  async findHpasFor(deployment: string) {
    return (await this.listHpas()).filter((h) => h.spec?.scaleTargetRef?.kind === 'Deployment' && h.spec.scaleTargetRef.name === deployment);
  }

  async listEvents(fieldSelector?: string) {
    return (await this.http.get<{ items: CoreV1Event[] }>(this.ns('/api/v1', 'events'), { fieldSelector }, this.req('LIST', 'events'))).items;
  }

  getPod(name: string) {
    return this.orNull(this.http.get<V1Pod>(`${this.ns('/api/v1', 'pods')}/${enc(name)}`, {}, this.req('GET', 'pods', name)));
  }

  getNode(name: string) {
    return this.orNull(this.http.get<V1Node>(`/api/v1/nodes/${enc(name)}`, {}, this.req('GET', 'nodes', name, null)));
  }

  async listNodes(labelSelector?: string) {
    return (await this.http.get<{ items: V1Node[] }>('/api/v1/nodes', { labelSelector }, this.req('LIST', 'nodes', undefined, null))).items;
  }

  // Everything else: the SDK adapter.
  patchDeployment: KubeClient['patchDeployment'] = async (...a) => (await this.full()).patchDeployment(...a);
  scaleDeployment: KubeClient['scaleDeployment'] = async (...a) => (await this.full()).scaleDeployment(...a);
  watchDeployment: KubeClient['watchDeployment'] = async (...a) => (await this.full()).watchDeployment(...a);
  readPodLog: KubeClient['readPodLog'] = async (...a) => (await this.full()).readPodLog(...a);
  createHpa: KubeClient['createHpa'] = async (...a) => (await this.full()).createHpa(...a);
  patchHpaSpec: KubeClient['patchHpaSpec'] = async (...a) => (await this.full()).patchHpaSpec(...a);
  deleteHpa: KubeClient['deleteHpa'] = async (...a) => (await this.full()).deleteHpa(...a);
  recordEvent: KubeClient['recordEvent'] = async (...a) => (await this.full()).recordEvent(...a);
  streamPodLog: KubeClient['streamPodLog'] = async (...a) => (await this.full()).streamPodLog(...a);
  patchNode: KubeClient['patchNode'] = async (...a) => (await this.full()).patchNode(...a);
  getSecretKeys: KubeClient['getSecretKeys'] = async (...a) => (await this.full()).getSecretKeys(...a);
  getConfigMapKeys: KubeClient['getConfigMapKeys'] = async (...a) => (await this.full()).getConfigMapKeys(...a);
  listPodMetrics: KubeClient['listPodMetrics'] = async (...a) => (await this.full()).listPodMetrics(...a);
  getLease: KubeClient['getLease'] = async (...a) => (await this.full()).getLease(...a);
  createLease: KubeClient['createLease'] = async (...a) => (await this.full()).createLease(...a);
  updateLease: KubeClient['updateLease'] = async (...a) => (await this.full()).updateLease(...a);
  deleteLease: KubeClient['deleteLease'] = async (...a) => (await this.full()).deleteLease(...a);
  cannotDo: KubeClient['cannotDo'] = async (...a) => (await this.full()).cannotDo(...a);
  whoAmI: KubeClient['whoAmI'] = async (...a) => (await this.full()).whoAmI(...a);
  getConfigMap: KubeClient['getConfigMap'] = async (...a) => (await this.full()).getConfigMap(...a);
  listConfigMaps: KubeClient['listConfigMaps'] = async (...a) => (await this.full()).listConfigMaps(...a);
  createConfigMap: KubeClient['createConfigMap'] = async (...a) => (await this.full()).createConfigMap(...a);
  patchConfigMap: KubeClient['patchConfigMap'] = async (...a) => (await this.full()).patchConfigMap(...a);
  deleteConfigMap: KubeClient['deleteConfigMap'] = async (...a) => (await this.full()).deleteConfigMap(...a);
  watchConfigMap: KubeClient['watchConfigMap'] = async (...a) => (await this.full()).watchConfigMap(...a);
  execInPod: NonNullable<KubeClient['execInPod']> = async (...a) => {
    const full = await this.full();
    if (!full.execInPod) throw new Error('this Kubernetes client cannot exec');
    return full.execInPod(...a);
  };
  portForward: NonNullable<KubeClient['portForward']> = async (...a) => {
    const full = await this.full();
    if (!full.portForward) throw new Error('this Kubernetes client cannot port-forward');
    return full.portForward(...a);
  };

  close() {
    this.http.close();
    void this.fullClient?.then(
      (f) => f.close(),
      () => undefined,
    );
  }
}

/**
 * The Kubernetes client of a run: direct reads when the kubeconfig allows (see above), the SDK
 * adapter for the rest. A kubeconfig this path cannot read is the SDK's to read, and to reject.
 */
export async function createKubeClient(target: KubeTarget, env: Record<string, string | undefined>): Promise<KubeClient> {
  const sdk = async () => (await import('./kube-adapter.js')).createKubeClient(target, env);
  const direct = env.RUNBOOK_KUBE_SDK_ONLY === '1' ? null : await directTarget(target, env);
  return direct ? new KubeRest(direct, target.namespace, sdk) : sdk();
}
