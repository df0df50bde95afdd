import type { V1Deployment, V1Pod, V1ReplicaSet, V1Scale, V2HorizontalPodAutoscaler, V1Lease, CoreV1Event, V1Node, V1ConfigMap } from '@kubernetes/client-node';

export type { V1Deployment, V1Pod, V1ReplicaSet, V1Scale, V2HorizontalPodAutoscaler, V1Lease, CoreV1Event, V1Node, V1ConfigMap };
import { KUBE_PERMISSIONS, type KubeMethod, type KubePermission } from '../core/kube-permissions.js';
import type { LeaseRecord } from '../core/lock.js';
export {
  KUBE_PERMISSIONS,
  LOCK_METHODS,
  AUDITED_METHODS,
  permissionsOf,
  describePermission,
  type KubeMethod,
  type KubePermission,
} from '../core/kube-permissions.js';
export type { LeaseRecord } from '../core/lock.js';

export type PatchType = 'strategic' | 'merge' | 'json';

export interface WriteOptions {
  /** Send with dryRun=All: the server validates the write and persists nothing. */
  dryRun?: boolean;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/**
 * The narrow Kubernetes surface the procedures use, bound to one namespace. Implemented over
 * @kubernetes/client-node (loaded on first use) and by in-memory fakes in unit tests.
 */
export interface KubeClient {
  readonly namespace: string;
  readonly context: string;
  readonly server: string;
  getDeployment(name: string): Promise<V1Deployment>;
  patchDeployment(name: string, patch: unknown, type: PatchType, opts?: WriteOptions): Promise<V1Deployment>;
  scaleDeployment(name: string, replicas: number, opts?: WriteOptions): Promise<V1Scale>;
  /** Yields watch events for one deployment until the signal aborts or the callback returns true. */
  watchDeployment(name: string, onEvent: (ev: WatchEvent<V1Deployment>) => boolean | void, signal: AbortSignal): Promise<void>;
  listPods(labelSelector?: string): Promise<V1Pod[]>;
  listReplicaSets(labelSelector?: string): Promise<V1ReplicaSet[]>;
  readPodLog(pod: string, opts?: { container?: string; tailLines?: number; previous?: boolean; sinceSeconds?: number; timestamps?: boolean }): Promise<string>;
  /** The autoscalers whose scaleTargetRef is this deployment, whatever their names. */
  findHpasFor(deployment: string): Promise<V2HorizontalPodAutoscaler[]>;
  createHpa(hpa: V2HorizontalPodAutoscaler, opts?: WriteOptions): Promise<V2HorizontalPodAutoscaler>;
  /**
   * JSON merge patch of the autoscaler's spec: no resourceVersion to go stale while the HPA
   * controller keeps writing status (a PUT of what was read answers 409 on a live cluster).
   */
  patchHpaSpec(name: string, spec: V2HorizontalPodAutoscaler['spec'], opts?: WriteOptions): Promise<V2HorizontalPodAutoscaler>;
  deleteHpa(name: string): Promise<void>;
  listHpas(): Promise<V2HorizontalPodAutoscaler[]>;
  listEvents(fieldSelector?: string): Promise<CoreV1Event[]>;
  /**
   * Writes a core/v1 Event about an object (source and reportingComponent `runbook`, reportingInstance
   * this host), in the object's namespace; about a cluster-scoped object (a Node) in `default`, the
   * only namespace the API server accepts for it and the one `kubectl describe node` searches.
   */
  recordEvent(ev: KubeEventRecord): Promise<void>;
  /** Streams one container's log (current or previous instance) into `out`; resolves once all of it is written. */
  streamPodLog(pod: string, out: NodeJS.WritableStream, opts?: { container?: string; previous?: boolean; sinceSeconds?: number }): Promise<void>;
  /** Cluster-scoped: null when the node does not exist. */
  getNode(name: string): Promise<V1Node | null>;
  listNodes(labelSelector?: string): Promise<V1Node[]>;
  patchNode(name: string, patch: unknown, type: PatchType, opts?: WriteOptions): Promise<V1Node>;
  /** One pod by name, or null when it does not exist. */
  getPod(name: string): Promise<V1Pod | null>;
  /** The key names of a Secret (never its values), or null when it does not exist. */
  getSecretKeys(name: string): Promise<string[] | null>;
  /** The key names of a ConfigMap (data and binaryData), or null when it does not exist. */
  getConfigMapKeys(name: string): Promise<string[] | null>;
  /** Current usage from metrics.k8s.io/v1beta1 for the namespace's pods (optionally by label). */
  listPodMetrics(labelSelector?: string): Promise<PodMetrics[]>;
  getLease(name: string): Promise<LeaseRecord | null>;
  /** 409 when it already exists. */
  createLease(lease: LeaseRecord): Promise<LeaseRecord>;
  /** Optimistic: 409 when `resourceVersion` is no longer the stored one (someone else wrote it). */
  updateLease(lease: LeaseRecord & { resourceVersion: string }): Promise<LeaseRecord>;
  /** Deletes only the version given (a precondition), so a lease another run took is never deleted. */
  deleteLease(name: string, resourceVersion: string): Promise<void>;
  /**
   * The permissions among these that the current identity lacks (SelfSubjectAccessReview each), in
   * `namespace` (default: the client's) unless a permission names its own namespace or is cluster-wide.
   */
  cannotDo(permissions: KubePermission[], namespace?: string): Promise<KubePermission[]>;
  /** Who the API server says this client is (authentication.k8s.io/v1 SelfSubjectReview). */
  whoAmI(): Promise<{ username: string; groups: string[] }>;
  /** ConfigMaps in any namespace (approval requests live in a namespace the config names, not the app's). null: none. */
  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | null>;
  listConfigMaps(namespace: string, labelSelector?: string): Promise<V1ConfigMap[]>;
  /** 409 when it exists. */
  createConfigMap(namespace: string, cm: V1ConfigMap, opts?: WriteOptions): Promise<V1ConfigMap>;
  /** JSON merge patch; with `resourceVersion` the write is optimistic (409 if it changed). */
  patchConfigMap(namespace: string, name: string, patch: Record<string, unknown>, opts?: WriteOptions & { resourceVersion?: string }): Promise<V1ConfigMap>;
  /** Deletes only that version when given (a precondition). */
  deleteConfigMap(namespace: string, name: string, resourceVersion?: string): Promise<void>;
  /** Watches one ConfigMap: list-then-watch from its resourceVersion, relist on 410 Gone, until the callback returns true or the signal aborts. */
  watchConfigMap(namespace: string, name: string, onEvent: (ev: WatchEvent<V1ConfigMap>) => boolean | void, signal: AbortSignal): Promise<void>;
  /**
   * Runs a command in a running container (pods/exec over WebSocket), as an argument array: a shell
   * only when the command is one. Resolves once the command ended (or the stream broke: `exitCode`
   * null and `error`). Optional, like portForward: an in-memory fake need not reach into containers.
   */
  execInPod?(pod: string, container: string, command: string[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * A port of a pod, reached through the API server (pods/portforward over WebSocket): each request
   * opens its own forwarded connection, and nothing listens on this machine while it is open.
   */
  portForward?(pod: string, port: number): Promise<PodPortForward>;
  close(): void;
}

/** What an Event says and about which object (its uid makes `kubectl describe` find it). */
export interface KubeEventRecord {
  object: { apiVersion: string; kind: string; name: string; namespace?: string; uid?: string };
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /** What was done (the Event's `action`; default: the reason). */
  action?: string;
}

export interface ExecOptions {
  /** Stream stdout here instead of collecting it (the exec is paused while `out` is full). */
  stdout?: NodeJS.WritableStream;
  signal?: AbortSignal;
  /** Gives up (closing the stream: the command is killed) after this long. */
  timeoutMs?: number;
  /** Collected stdout beyond this fails the call (default 16 MiB); streamed stdout has no limit. */
  maxBytes?: number;
}

/** How a command run in a container ended. */
export interface ExecResult {
  /** Its exit code; null when the runtime reported another failure or the stream broke (`error` says which). */
  exitCode: number | null;
  /** Collected stdout (empty when streamed to `opts.stdout`). */
  stdout: Buffer;
  /** The first 64 KiB of stderr. */
  stderr: string;
  /** Bytes of stdout received. */
  bytes: number;
  /** Why it did not succeed, in the runtime's words. */
  error?: string;
}

/** A pod's port through a port-forward: plain HTTP GETs and WebSockets, each over its own connection. */
export interface PodPortForward {
  readonly pod: string;
  readonly port: number;
  /** GET `path` (Host: 127.0.0.1:<port>, Connection: close); the body as text. */
  httpGet(path: string, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<{ status: number; body: string }>;
  /** A WebSocket to `path` on the pod's port (text messages). */
  webSocket(path: string, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<PodWebSocket>;
}

/** A text WebSocket to a pod's port. Messages are delivered in order; `pause` holds them back. */
export interface PodWebSocket {
  send(text: string): void;
  onMessage(listener: (text: string) => void): void;
  pause(): void;
  resume(): void;
  /** Resolves (never rejects) when the socket is closed, for whatever reason, with that reason. */
  readonly closed: Promise<string>;
  close(): void;
}

/** A pod's usage from metrics.k8s.io, per container (quantities as the server sends them). */
export interface PodMetrics {
  name: string;
  timestamp?: string;
  window?: string;
  containers: Array<{ name: string; usage: { cpu: string; memory: string } }>;
}

// The call → RBAC table lives in core (the engine's preflight and `runbook rbac` read it); the
// compiler checks here that it names every call of KubeClient and nothing else.
type NotCalls = 'namespace' | 'context' | 'server' | 'close' | 'cannotDo';
type Assert<T extends never> = T;
export type EveryCallHasPermissions = Assert<Exclude<Exclude<keyof KubeClient, NotCalls>, KubeMethod>>;
export type EveryPermissionIsACall = Assert<Exclude<KubeMethod, keyof KubeClient>>;

/**
 * A KubeClient that refuses calls the procedure did not declare: tests run with it, so a
 * declaration (and the RBAC derived from it) cannot miss a call the code makes.
 */
export function declaredOnly(kube: KubeClient, allowed: readonly KubeMethod[], procedure: string): KubeClient {
  const ok = new Set<string>(allowed);
  return new Proxy(kube, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof prop === 'string' && prop in KUBE_PERMISSIONS && !ok.has(prop)) {
        return () =>
          Promise.reject(new Error(`${procedure} calls KubeClient.${prop} without declaring it in its kube list (a bug: runbook rbac would miss it)`));
      }
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

export interface KubeTarget {
  kubeconfig?: string;
  context?: string;
  namespace: string;
}

/** `PATCH deployments/app in namespace shop`: what a request was, for its error. null namespace: cluster-scoped. */
export function describeRequest(verb: string, resource: string, name: string | undefined, namespace: string | null): string {
  return `${verb} ${resource}${name ? `/${name}` : ''}${namespace === null ? '' : ` in namespace ${namespace}`}`;
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();

/** An API server's answer other than 2xx: the request, then the server's own message (from its Status body) and code. */
export function apiStatusError(server: string, what: string | undefined, code: number, body: unknown): KubeApiError {
  let message = `HTTP ${code}`;
  let reason: string | undefined;
  try {
    const status = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: unknown; reason?: unknown } | undefined;
    if (status?.message) message = String(status.message);
    if (typeof status?.reason === 'string') reason = status.reason;
  } catch {
    if (typeof body === 'string' && body.trim()) message = body.trim().slice(0, 200);
  }
  return new KubeApiError(`Kubernetes API at ${server}: ${what ? `${what}: ` : ''}${oneLine(message)} (${code})`, code, reason);
}

/** No answer at all (refused, reset, TLS): the network error's code, else its message. */
export function unreachableError(server: string, what: string | undefined, err: unknown): KubeApiError {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e?.code ?? e?.cause?.code;
  if (code) return new KubeApiError(`cannot reach the Kubernetes API at ${server}${what ? ` (${what})` : ''}: ${code}`, 0);
  return new KubeApiError(`Kubernetes API${what ? ` (${what})` : ''}: ${oneLine(e?.message ?? String(err))}`, 0);
}

/** Errors from the API server, as one readable line; `status` is the HTTP code (0 for network errors). */
export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}
