/**
 * A small, event-driven stand-in for kube-controller-manager + scheduler +
 * kubelet: deployment and replicaset controllers (rolling updates with
 * maxSurge/maxUnavailable, revisions, rollback re-use of old ReplicaSets,
 * revisionHistoryLimit), pod "scheduling" onto nodes, readiness after a delay,
 * crash loops, garbage collection of owned objects and core/v1 Events.
 *
 * All work runs from a de-duplicated queue drained on timers; nothing polls.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { PodLogs } from './logs.js';
import { resolveStored, STORED, type ResourceDef } from './resources.js';
import { matchLabelSelector } from './selectors.js';
import { canonicalJson, timestamp, type KubeStore, type StoreChange } from './store.js';
import {
  clone,
  isObject,
  type Condition,
  type ContainerStatus,
  type Deployment,
  type DeploymentStatus,
  type KubeObject,
  type NodeObject,
  type Pod,
  type PodTemplateSpec,
  type ReplicaSet,
  type ReplicaSetStatus,
} from './types.js';

export const REVISION = 'deployment.kubernetes.io/revision';
export const REVISION_HISTORY = 'deployment.kubernetes.io/revision-history';
export const HASH_LABEL = 'pod-template-hash';

/** What happens to a newly created pod instead of becoming Ready. */
export type PodFailureMode = 'never-ready' | 'crash-loop';

export interface CrashLoopOptions {
  /** Container to crash (default: the first). */
  container?: string;
  restartCount?: number;
  exitCode?: number;
  /** lastState.terminated.reason, default 'Error'. */
  reason?: string;
  /** Logs of the previous (crashed) container instance. */
  previousLogs?: string[];
  /** Logs of the current instance. */
  logs?: string[];
}

const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function safeEncode(bytes: Uint8Array, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += SAFE_ALPHABET[(bytes[i] ?? 0) % SAFE_ALPHABET.length];
  return out;
}

export function randomSuffix(length = 5): string {
  return safeEncode(randomBytes(length), length);
}

/** Hash of a pod template, ignoring the pod-template-hash label and empty/null fields. */
export function templateHash(template: PodTemplateSpec): string {
  const t = clone(template);
  if (t.metadata?.labels) delete t.metadata.labels[HASH_LABEL];
  return safeEncode(createHash('sha256').update(canonicalJson(t)).digest(), 10);
}

function revisionOf(o: KubeObject): number {
  const v = Number(o.metadata.annotations?.[REVISION] ?? '0');
  return Number.isFinite(v) ? v : 0;
}

function isControlledBy(o: KubeObject, owner: KubeObject): boolean {
  return (o.metadata.ownerReferences ?? []).some((r) => r.controller === true && r.uid === owner.metadata.uid);
}

function resolveIntOrPercent(v: number | string | undefined, total: number, roundUp: boolean, dflt: string): number {
  const val = v ?? dflt;
  if (typeof val === 'number') return val;
  const m = /^(\d+)%$/.exec(val);
  if (!m) return Number(val) || 0;
  const x = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

type ConditionInput = Pick<Condition, 'type' | 'status' | 'reason' | 'message' | 'lastProbeTime'>;

function setCondition(list: Condition[], c: ConditionInput, now: string, withUpdateTime: boolean): Condition[] {
  const prev = list.find((x) => x.type === c.type);
  const same = prev && prev.status === c.status && prev.reason === c.reason;
  const next: Condition = { ...c };
  if (withUpdateTime) next.lastUpdateTime = same && prev.message === c.message ? (prev.lastUpdateTime ?? now) : now;
  next.lastTransitionTime = prev && prev.status === c.status ? (prev.lastTransitionTime ?? now) : now;
  return [...list.filter((x) => x.type !== c.type), next];
}

function podReady(p: Pod): boolean {
  return (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Drops zero/empty optional integer fields the way Go's omitempty does. */
function omitZero<T extends Record<string, unknown>>(o: T, keep: string[] = []): T {
  for (const [k, v] of Object.entries(o)) if (v === 0 && !keep.includes(k)) delete o[k];
  return o;
}

type WorkItem =
  | { type: 'deployment' | 'replicaset' | 'hpa'; ns: string; name: string }
  | { type: 'pod-ready'; ns: string; name: string; uid: string }
  | { type: 'schedule'; ns: string; name: string }
  | { type: 'gc'; ns: string | undefined; uid: string }
  | { type: 'gc-namespace'; ns: string };

export interface ControllerOptions {
  readyDelayMs: number;
}

export class KubeController {
  /** Delay before a new pod turns Ready (ms). */
  readyDelayMs: number;
  /**
   * Failure mode for new pods: 'never-ready' (running, readiness failing — for
   * rollout timeouts) or 'crash-loop'; or a function deciding per pod (e.g. by image).
   */
  failPods: PodFailureMode | ((pod: Pod) => PodFailureMode | undefined) | undefined;
  /** Options used when failPods yields 'crash-loop'. */
  crashLoopOptions: CrashLoopOptions = {};

  private readonly queue = new Map<string, WorkItem>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly keyedTimers = new Map<string, NodeJS.Timeout>();
  private scheduled: NodeJS.Timeout | undefined;
  private paused = false;
  private stopped = false;
  private readonly unsubscribe: () => void;
  /** Per-deployment ready delay overrides ("ns/name" → ms), used while seeding. */
  readonly readyDelayOverrides = new Map<string, number>();
  private readonly progressSince = new Map<string, number>();
  private nodeCursor = 0;
  private ipCounter = 10;
  private readonly defs: Record<'deployments' | 'replicasets' | 'pods' | 'events' | 'nodes' | 'hpa', ResourceDef>;

  constructor(
    private readonly store: KubeStore,
    private readonly logs: PodLogs,
    opts: ControllerOptions,
  ) {
    this.readyDelayMs = opts.readyDelayMs;
    this.defs = {
      deployments: resolveStored('deployments'),
      replicasets: resolveStored('replicasets'),
      pods: resolveStored('pods'),
      events: resolveStored('events'),
      nodes: resolveStored('nodes'),
      hpa: resolveStored('horizontalpodautoscalers'),
    };
    this.unsubscribe = store.subscribe((c) => this.onChange(c));
  }

  // ---------------------------------------------------------------- control

  /** Stops processing (changes are queued) until resume(). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.kick();
  }

  /** Stops the controller for good (on server close). */
  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    if (this.scheduled) clearTimeout(this.scheduled);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queue.clear();
  }

  /** Puts an existing pod into CrashLoopBackOff (restartCount, lastState.terminated, previous logs). */
  crashLoop(namespace: string, podName: string, opts: CrashLoopOptions = {}): void {
    const pod = this.store.raw(this.defs.pods, namespace, podName) as Pod | undefined;
    if (!pod) throw new Error(`pod ${namespace}/${podName} not found`);
    this.applyCrashLoop(clone(pod), opts);
  }

  /** Marks a pod Ready now (e.g. after failPods was used). */
  markReady(namespace: string, podName: string): void {
    const pod = this.store.raw(this.defs.pods, namespace, podName);
    if (!pod) throw new Error(`pod ${namespace}/${podName} not found`);
    this.enqueue({ type: 'pod-ready', ns: namespace, name: podName, uid: pod.metadata.uid ?? '' });
  }

  // ------------------------------------------------------------------ queue

  private onChange(c: StoreChange): void {
    const o = c.event.object;
    const ns = o.metadata.namespace ?? '';
    switch (c.resource.plural) {
      case 'deployments':
        if (c.event.type !== 'DELETED') this.enqueue({ type: 'deployment', ns, name: o.metadata.name });
        break;
      case 'replicasets':
      case 'pods':
        if (c.event.type !== 'DELETED') this.enqueue({ type: c.resource.plural === 'pods' ? 'schedule' : 'replicaset', ns, name: o.metadata.name });
        for (const ref of o.metadata.ownerReferences ?? []) {
          if (!ref.controller) continue;
          this.enqueue({ type: ref.kind === 'Deployment' ? 'deployment' : 'replicaset', ns, name: ref.name });
        }
        if (c.resource.plural === 'pods' && c.event.type === 'DELETED') this.logs.dropPod(ns, o.metadata.name);
        break;
      case 'horizontalpodautoscalers':
        if (c.event.type !== 'DELETED') this.enqueue({ type: 'hpa', ns, name: o.metadata.name });
        break;
      case 'namespaces':
        if (c.event.type === 'DELETED') this.enqueue({ type: 'gc-namespace', ns: o.metadata.name });
        break;
      case 'nodes':
        for (const p of this.store.list<Pod>('pods', { fieldSelector: 'spec.nodeName=' })) {
          this.enqueue({ type: 'schedule', ns: p.metadata.namespace ?? '', name: p.metadata.name });
        }
        break;
      default:
        break;
    }
    if (c.event.type === 'DELETED' && o.metadata.uid) this.enqueue({ type: 'gc', ns: o.metadata.namespace, uid: o.metadata.uid });
  }

  private enqueue(item: WorkItem): void {
    if (this.stopped) return;
    const key = item.type === 'gc' ? `gc/${item.uid}` : item.type === 'gc-namespace' ? `gc-namespace/${item.ns}` : `${item.type}/${item.ns}/${item.name}`;
    this.queue.set(key, item);
    this.kick();
  }

  private kick(): void {
    if (this.paused || this.stopped || this.scheduled || this.queue.size === 0) return;
    this.scheduled = setTimeout(() => {
      this.scheduled = undefined;
      this.drain();
    }, 0);
  }

  private later(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  /** Like later(), but at most one pending timer per key (re-arming replaces it). */
  private laterKeyed(key: string, ms: number, fn: () => void): void {
    const prev = this.keyedTimers.get(key);
    if (prev) {
      clearTimeout(prev);
      this.timers.delete(prev);
    }
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.keyedTimers.delete(key);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
    this.keyedTimers.set(key, t);
  }

  private drain(): void {
    const items = [...this.queue.values()];
    this.queue.clear();
    for (const item of items) {
      if (this.stopped || this.paused) {
        if (!this.stopped) this.enqueue(item);
        continue;
      }
      try {
        this.process(item);
      } catch (err) {
        // A test double should never take the test process down; surface it loudly instead.
        console.error('kube test controller error', item, err);
      }
    }
  }

  private process(item: WorkItem): void {
    switch (item.type) {
      case 'deployment':
        return this.syncDeployment(item.ns, item.name);
      case 'replicaset':
        return this.syncReplicaSet(item.ns, item.name);
      case 'pod-ready':
        return this.setPodReady(item.ns, item.name, item.uid);
      case 'schedule':
        return this.schedulePod(item.ns, item.name);
      case 'hpa':
        return this.syncHpa(item.ns, item.name);
      case 'gc':
        return this.collectGarbage(item.ns, item.uid);
      case 'gc-namespace':
        return this.deleteNamespaceContents(item.ns);
    }
  }

  // ---------------------------------------------------------------- helpers

  private write<T extends KubeObject>(def: ResourceDef, obj: T): T {
    const existing = this.store.raw(def, obj.metadata.namespace, obj.metadata.name);
    return this.store.commit(def, this.store.prepare(def, obj, existing)) as T;
  }

  private changed(a: unknown, b: unknown): boolean {
    return canonicalJson(a) !== canonicalJson(b);
  }

  /** Records a core/v1 Event about `about`. */
  recordEvent(about: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string, component: string): void {
    const now = timestamp();
    const ns = about.metadata.namespace ?? 'default';
    const ev: KubeObject = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${about.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: ns },
      involvedObject: {
        apiVersion: about.apiVersion,
        kind: about.kind,
        namespace: about.metadata.namespace,
        name: about.metadata.name,
        uid: about.metadata.uid,
        resourceVersion: about.metadata.resourceVersion,
      },
      reason,
      message,
      source: { component },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      type,
      eventTime: null,
      reportingComponent: component,
      reportingInstance: '',
    };
    this.store.commit(this.defs.events, this.store.prepare(this.defs.events, ev, undefined));
  }

  private ownedReplicaSets(d: Deployment): ReplicaSet[] {
    return this.store
      .list<ReplicaSet>('replicasets', { namespace: d.metadata.namespace })
      .filter((rs) => isControlledBy(rs, d));
  }

  // ------------------------------------------------------------ deployments

  private syncDeployment(ns: string, name: string): void {
    const raw = this.store.raw(this.defs.deployments, ns, name) as Deployment | undefined;
    if (!raw || raw.metadata.deletionTimestamp) return;
    const d = clone(raw);
    const spec = d.spec;
    const desired = spec.replicas ?? 1;
    let all = this.ownedReplicaSets(d);
    const hash = templateHash(spec.template);
    let newRS = all.find((rs) => rs.metadata.labels?.[HASH_LABEL] === hash);
    const maxRevision = Math.max(0, ...all.map(revisionOf));
    let createdRS = false;

    if (!spec.paused) {
      if (!newRS) {
        newRS = this.createReplicaSet(d, hash, maxRevision + 1);
        createdRS = true;
        all = [...all, newRS];
      } else {
        const rev = revisionOf(newRS);
        const annotations = this.replicaSetAnnotations(d, newRS, rev < maxRevision ? maxRevision + 1 : rev);
        if (rev < maxRevision) {
          const history = newRS.metadata.annotations?.[REVISION_HISTORY];
          annotations[REVISION_HISTORY] = history ? `${history},${rev}` : String(rev);
        }
        if (this.changed(annotations, newRS.metadata.annotations ?? {})) {
          newRS.metadata.annotations = annotations;
          newRS = this.write(this.defs.replicasets, newRS);
          all = all.map((rs) => (rs.metadata.uid === newRS?.metadata.uid ? (newRS as ReplicaSet) : rs));
        }
      }
      all = this.rollout(d, newRS, all, desired);
      this.cleanupHistory(d, newRS, all);
    }

    const annotations = { ...(d.metadata.annotations ?? {}) };
    if (newRS) annotations[REVISION] = String(revisionOf(newRS));
    const status = this.deploymentStatus(d, newRS, all, desired, createdRS);
    if (this.changed(annotations, raw.metadata.annotations ?? {}) || this.changed(status, raw.status ?? {})) {
      const next = clone(raw);
      next.metadata.annotations = annotations;
      next.status = status;
      this.write(this.defs.deployments, next);
    }
  }

  private replicaSetAnnotations(d: Deployment, rs: ReplicaSet | undefined, revision: number): Record<string, string> {
    const skip = new Set(['kubectl.kubernetes.io/last-applied-configuration', REVISION, REVISION_HISTORY, 'deployment.kubernetes.io/desired-replicas', 'deployment.kubernetes.io/max-replicas']);
    const out: Record<string, string> = { ...(rs?.metadata.annotations ?? {}) };
    for (const [k, v] of Object.entries(d.metadata.annotations ?? {})) if (!skip.has(k)) out[k] = v;
    const desired = d.spec.replicas ?? 1;
    out['deployment.kubernetes.io/desired-replicas'] = String(desired);
    out['deployment.kubernetes.io/max-replicas'] = String(desired + resolveIntOrPercent(d.spec.strategy?.rollingUpdate?.maxSurge, desired, true, '25%'));
    out[REVISION] = String(revision);
    return out;
  }

  private createReplicaSet(d: Deployment, hash: string, revision: number): ReplicaSet {
    const template = clone(d.spec.template);
    template.metadata = { ...(template.metadata ?? {}), labels: { ...(template.metadata?.labels ?? {}), [HASH_LABEL]: hash } };
    const rs: ReplicaSet = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${d.metadata.name}-${hash}`,
        namespace: d.metadata.namespace,
        labels: { ...(template.metadata.labels ?? {}) },
        annotations: this.replicaSetAnnotations(d, undefined, revision),
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        replicas: 0,
        minReadySeconds: d.spec.minReadySeconds ?? 0,
        selector: { ...d.spec.selector, matchLabels: { ...(d.spec.selector.matchLabels ?? {}), [HASH_LABEL]: hash } },
        template,
      },
      status: { replicas: 0 },
    };
    return this.write(this.defs.replicasets, rs);
  }

  private scaleReplicaSet(d: Deployment, rs: ReplicaSet, to: number): ReplicaSet {
    const from = rs.spec.replicas ?? 0;
    if (from === to) return rs;
    const next = clone(rs);
    next.spec.replicas = to;
    next.metadata.annotations = { ...(next.metadata.annotations ?? {}), ...this.replicaSetAnnotations(d, rs, revisionOf(rs)) };
    const written = this.write(this.defs.replicasets, next);
    this.recordEvent(d, 'Normal', 'ScalingReplicaSet', `Scaled ${to > from ? 'up' : 'down'} replica set ${rs.metadata.name} to ${to} from ${from}`, 'deployment-controller');
    return written;
  }

  /** One step of the rollout; returns the updated list of owned ReplicaSets. */
  private rollout(d: Deployment, newRS: ReplicaSet, all: ReplicaSet[], desired: number): ReplicaSet[] {
    const byUid = new Map(all.map((rs) => [rs.metadata.uid, rs] as const));
    const set = (rs: ReplicaSet): void => void byUid.set(rs.metadata.uid, rs);
    const olds = (): ReplicaSet[] => [...byUid.values()].filter((rs) => rs.metadata.uid !== newRS.metadata.uid);
    const specSum = (): number => [...byUid.values()].reduce((n, rs) => n + (rs.spec.replicas ?? 0), 0);
    let cur = byUid.get(newRS.metadata.uid) ?? newRS;
    const activeOld = olds().filter((rs) => (rs.spec.replicas ?? 0) > 0);

    if (d.spec.strategy?.type === 'Recreate') {
      if (activeOld.length > 0) {
        for (const rs of activeOld) set(this.scaleReplicaSet(d, rs, 0));
      } else if (olds().every((rs) => (rs.status?.replicas ?? 0) === 0)) {
        set(this.scaleReplicaSet(d, cur, desired));
      }
      return [...byUid.values()];
    }

    if (activeOld.length === 0) {
      set(this.scaleReplicaSet(d, cur, desired));
      return [...byUid.values()];
    }
    const maxSurge = resolveIntOrPercent(d.spec.strategy?.rollingUpdate?.maxSurge, desired, true, '25%');
    let maxUnavailable = resolveIntOrPercent(d.spec.strategy?.rollingUpdate?.maxUnavailable, desired, false, '25%');
    if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;

    // Scale up the new ReplicaSet within maxSurge.
    const curReplicas = cur.spec.replicas ?? 0;
    if (curReplicas > desired) {
      cur = this.scaleReplicaSet(d, cur, desired);
      set(cur);
    } else if (curReplicas < desired) {
      const room = desired + maxSurge - specSum();
      if (room > 0) {
        cur = this.scaleReplicaSet(d, cur, curReplicas + Math.min(room, desired - curReplicas));
        set(cur);
      }
    }

    // Scale down old ReplicaSets within maxUnavailable (unhealthy replicas first).
    const minAvailable = desired - maxUnavailable;
    const newUnavailable = (cur.spec.replicas ?? 0) - (cur.status?.availableReplicas ?? 0);
    let budget = specSum() - minAvailable - newUnavailable;
    const oldest = olds().sort((a, b) => revisionOf(a) - revisionOf(b));
    for (const rs of oldest) {
      if (budget <= 0) break;
      const unhealthy = (rs.spec.replicas ?? 0) - (rs.status?.availableReplicas ?? 0);
      const down = Math.min(unhealthy, budget);
      if (down > 0) {
        set(this.scaleReplicaSet(d, rs, (rs.spec.replicas ?? 0) - down));
        budget -= down;
      }
    }
    const available = [...byUid.values()].reduce((n, rs) => n + Math.min(rs.status?.availableReplicas ?? 0, rs.spec.replicas ?? 0), 0);
    let canRemove = available - minAvailable;
    for (const rs of olds().sort((a, b) => revisionOf(a) - revisionOf(b))) {
      if (canRemove <= 0) break;
      const down = Math.min(rs.spec.replicas ?? 0, canRemove);
      if (down > 0) {
        set(this.scaleReplicaSet(d, rs, (rs.spec.replicas ?? 0) - down));
        canRemove -= down;
      }
    }
    return [...byUid.values()];
  }

  private cleanupHistory(d: Deployment, newRS: ReplicaSet, all: ReplicaSet[]): void {
    const limit = d.spec.revisionHistoryLimit ?? 10;
    const idle = all
      .filter((rs) => rs.metadata.uid !== newRS.metadata.uid && (rs.spec.replicas ?? 0) === 0 && (rs.status?.replicas ?? 0) === 0)
      .sort((a, b) => revisionOf(a) - revisionOf(b));
    while (idle.length > limit) {
      const rs = idle.shift();
      if (rs) this.store.commitDelete(this.defs.replicasets, rs.metadata.namespace, rs.metadata.name);
    }
  }

  private deploymentStatus(d: Deployment, newRS: ReplicaSet | undefined, all: ReplicaSet[], desired: number, createdRS: boolean): DeploymentStatus {
    const sum = (f: (s: ReplicaSetStatus | undefined) => number | undefined): number => all.reduce((n, rs) => n + (f(rs.status) ?? 0), 0);
    const replicas = sum((s) => s?.replicas);
    const updatedReplicas = newRS?.status?.replicas ?? 0;
    const readyReplicas = sum((s) => s?.readyReplicas);
    const availableReplicas = sum((s) => s?.availableReplicas);
    const specTotal = all.reduce((n, rs) => n + (rs.spec.replicas ?? 0), 0);
    const unavailableReplicas = Math.max(0, specTotal - availableReplicas);
    const prev = d.status ?? {};
    const now = timestamp();
    const uid = d.metadata.uid ?? '';
    const maxUnavailable = d.spec.strategy?.type === 'Recreate' ? 0 : resolveIntOrPercent(d.spec.strategy?.rollingUpdate?.maxUnavailable, desired, false, '25%');
    let conditions = [...(prev.conditions ?? [])];
    conditions = setCondition(
      conditions,
      availableReplicas >= desired - maxUnavailable
        ? { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' }
        : { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' },
      now,
      true,
    );
    const rsName = newRS?.metadata.name ?? '';
    const complete = updatedReplicas === desired && replicas === desired && availableReplicas === desired;
    const progressed =
      createdRS || replicas !== (prev.replicas ?? 0) || updatedReplicas !== (prev.updatedReplicas ?? 0) || availableReplicas !== (prev.availableReplicas ?? 0) || readyReplicas !== (prev.readyReplicas ?? 0) || (prev.observedGeneration ?? 0) < (d.metadata.generation ?? 1);
    let progressing: ConditionInput | undefined;
    const prevProgressing = conditions.find((c) => c.type === 'Progressing');
    if (d.spec.paused) {
      progressing = { type: 'Progressing', status: 'Unknown', reason: 'DeploymentPaused', message: 'Deployment is paused' };
    } else if (complete) {
      progressing = { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${rsName}" has successfully progressed.` };
      this.progressSince.delete(uid);
    } else if (createdRS) {
      progressing = { type: 'Progressing', status: 'True', reason: 'NewReplicaSetCreated', message: `Created new replica set "${rsName}"` };
      this.progressSince.set(uid, Date.now());
    } else if (progressed || !this.progressSince.has(uid)) {
      progressing = { type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: `ReplicaSet "${rsName}" is progressing.` };
      this.progressSince.set(uid, Date.now());
    } else if (prevProgressing?.reason !== 'ProgressDeadlineExceeded') {
      const deadlineMs = (d.spec.progressDeadlineSeconds ?? 600) * 1000;
      const since = this.progressSince.get(uid) ?? Date.now();
      if (Date.now() - since >= deadlineMs) {
        progressing = { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: `ReplicaSet "${rsName}" has timed out progressing.` };
      }
    }
    if (progressing) {
      conditions = setCondition(conditions, progressing, now, true);
      if (progressing.reason !== 'NewReplicaSetAvailable' && progressing.reason !== 'ProgressDeadlineExceeded' && !d.spec.paused) {
        const deadlineMs = (d.spec.progressDeadlineSeconds ?? 600) * 1000;
        this.laterKeyed(`deadline/${uid}`, deadlineMs + 5, () => this.enqueue({ type: 'deployment', ns: d.metadata.namespace ?? '', name: d.metadata.name }));
      }
    }
    const order = ['Available', 'Progressing'];
    conditions.sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
    return omitZero({
      observedGeneration: d.metadata.generation ?? 1,
      replicas,
      updatedReplicas,
      readyReplicas,
      availableReplicas,
      unavailableReplicas,
      conditions,
    });
  }

  // ------------------------------------------------------------ replicasets

  private syncReplicaSet(ns: string, name: string): void {
    const raw = this.store.raw(this.defs.replicasets, ns, name) as ReplicaSet | undefined;
    if (!raw) return;
    const rs = clone(raw);
    let pods = this.store.list<Pod>('pods', { namespace: ns }).filter((p) => isControlledBy(p, rs) && !p.metadata.deletionTimestamp);
    const desired = rs.spec.replicas ?? 0;
    if (pods.length < desired) {
      for (let i = pods.length; i < desired; i++) pods.push(this.createPod(rs));
    } else if (pods.length > desired) {
      const victims = [...pods]
        .sort((a, b) => Number(podReady(a)) - Number(podReady(b)) || (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''))
        .slice(0, pods.length - desired);
      const gone = new Set(victims.map((p) => p.metadata.uid));
      for (const p of victims) this.store.commitDelete(this.defs.pods, ns, p.metadata.name);
      pods = pods.filter((p) => !gone.has(p.metadata.uid));
    }
    const ready = pods.filter(podReady).length;
    const status: ReplicaSetStatus = omitZero(
      {
        replicas: pods.length,
        fullyLabeledReplicas: pods.filter((p) => matchLabelSelector(rs.spec.selector, p.metadata.labels)).length,
        readyReplicas: ready,
        availableReplicas: ready,
        observedGeneration: rs.metadata.generation ?? 1,
      },
      ['replicas'],
    );
    if (this.changed(status, raw.status ?? {})) {
      const next = clone(raw);
      next.status = status;
      this.write(this.defs.replicasets, next);
    }
  }

  private failureMode(pod: Pod): PodFailureMode | undefined {
    return typeof this.failPods === 'function' ? this.failPods(pod) : this.failPods;
  }

  private readyDelayFor(rs: ReplicaSet): number {
    const owner = rs.metadata.ownerReferences?.find((r) => r.kind === 'Deployment');
    const override = owner ? this.readyDelayOverrides.get(`${rs.metadata.namespace ?? ''}/${owner.name}`) : undefined;
    return override ?? this.readyDelayMs;
  }

  private createPod(rs: ReplicaSet): Pod {
    const t = clone(rs.spec.template);
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${rs.metadata.name}-${randomSuffix()}`,
        generateName: `${rs.metadata.name}-`,
        namespace: rs.metadata.namespace,
        labels: { ...(t.metadata?.labels ?? {}) },
        ...(t.metadata?.annotations ? { annotations: { ...t.metadata.annotations } } : {}),
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs.metadata.name, uid: rs.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }],
      },
      spec: { ...t.spec, serviceAccountName: (t.spec.serviceAccountName as string | undefined) ?? 'default', enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority', priority: 0 },
      status: { phase: 'Pending', qosClass: this.qosClass(t.spec.containers) },
    };
    const written = this.write(this.defs.pods, pod);
    this.schedulePod(written.metadata.namespace ?? '', written.metadata.name, this.readyDelayFor(rs));
    return (this.store.raw(this.defs.pods, written.metadata.namespace, written.metadata.name) as Pod | undefined) ?? written;
  }

  private qosClass(containers: Pod['spec']['containers']): string {
    const hasAny = containers.some((c) => Object.keys(c.resources?.requests ?? {}).length > 0 || Object.keys(c.resources?.limits ?? {}).length > 0);
    if (!hasAny) return 'BestEffort';
    const guaranteed = containers.every((c) => {
      const l = c.resources?.limits ?? {};
      const r = c.resources?.requests ?? l;
      return l.cpu !== undefined && l.memory !== undefined && String(r.cpu) === String(l.cpu) && String(r.memory) === String(l.memory);
    });
    return guaranteed ? 'Guaranteed' : 'Burstable';
  }

  private pickNode(): NodeObject | undefined {
    const nodes = this.store.list<NodeObject>('nodes').filter((n) => n.spec?.unschedulable !== true);
    if (nodes.length === 0) return undefined;
    const node = nodes[this.nodeCursor % nodes.length];
    this.nodeCursor++;
    return node;
  }

  /** Binds a pending pod to a node and starts its containers (not Ready yet). */
  private schedulePod(ns: string, name: string, readyDelay = this.readyDelayMs): void {
    const raw = this.store.raw(this.defs.pods, ns, name) as Pod | undefined;
    if (!raw || raw.spec.nodeName || raw.status?.phase !== 'Pending') return;
    const pod = clone(raw);
    const now = timestamp();
    const node = this.pickNode();
    if (!node) {
      const total = this.store.list('nodes').length;
      const conds = setCondition(pod.status?.conditions ?? [], { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: `0/${total} nodes are available: ${total} node(s) were unschedulable.`, lastProbeTime: null }, now, false);
      if (this.changed(conds, pod.status?.conditions ?? [])) {
        pod.status = { ...pod.status, conditions: conds };
        this.write(this.defs.pods, pod);
        this.recordEvent(pod, 'Warning', 'FailedScheduling', `0/${total} nodes are available: ${total} node(s) were unschedulable.`, 'default-scheduler');
      }
      return;
    }
    const ip = this.ipCounter++;
    const hostIP = (isObject(node.status) && Array.isArray(node.status.addresses) && isObject(node.status.addresses[0]) ? String(node.status.addresses[0].address) : '10.0.0.1');
    pod.spec.nodeName = node.metadata.name;
    const containerStatuses: ContainerStatus[] = pod.spec.containers.map((c) => ({
      name: c.name,
      ready: false,
      started: true,
      restartCount: 0,
      image: c.image ?? '',
      imageID: `${(c.image ?? '').split(':')[0] ?? ''}@sha256:${createHash('sha256').update(c.image ?? '').digest('hex')}`,
      containerID: `containerd://${randomBytes(32).toString('hex')}`,
      state: { running: { startedAt: now } },
      lastState: {},
    }));
    const cond = (type: string, status: 'True' | 'False', reason?: string, message?: string): Condition => ({
      type,
      status,
      lastProbeTime: null,
      lastTransitionTime: now,
      ...(reason ? { reason } : {}),
      ...(message ? { message } : {}),
    });
    const notReady = `containers with unready status: [${pod.spec.containers.map((c) => c.name).join(' ')}]`;
    pod.status = {
      ...pod.status,
      phase: 'Running',
      conditions: [
        cond('PodReadyToStartContainers', 'True'),
        cond('Initialized', 'True'),
        cond('Ready', 'False', 'ContainersNotReady', notReady),
        cond('ContainersReady', 'False', 'ContainersNotReady', notReady),
        cond('PodScheduled', 'True'),
      ],
      hostIP,
      hostIPs: [{ ip: hostIP }],
      podIP: `10.244.${Math.floor(ip / 250) % 250}.${(ip % 250) + 2}`,
      podIPs: [{ ip: `10.244.${Math.floor(ip / 250) % 250}.${(ip % 250) + 2}` }],
      startTime: now,
      containerStatuses,
    };
    const written = this.write(this.defs.pods, pod);
    this.recordEvent(written, 'Normal', 'Scheduled', `Successfully assigned ${ns}/${name} to ${node.metadata.name}`, 'default-scheduler');
    for (const c of pod.spec.containers) {
      if (!this.logs.has(ns, name, c.name, false)) {
        this.logs.set(ns, name, c.name, false, [
          `level=info msg="starting ${c.name}" image=${c.image ?? ''} pod=${name}`,
          `level=info msg="configuration loaded" env=${(c.env ?? []).length}`,
          `level=info msg="listening" port=${c.ports?.[0]?.containerPort ?? 8080}`,
        ]);
      }
      this.recordEvent(written, 'Normal', 'Pulled', `Container image "${c.image ?? ''}" already present on machine`, 'kubelet');
      this.recordEvent(written, 'Normal', 'Created', `Created container: ${c.name}`, 'kubelet');
      this.recordEvent(written, 'Normal', 'Started', `Started container ${c.name}`, 'kubelet');
    }
    const mode = this.failureMode(written);
    if (mode === 'crash-loop') {
      this.applyCrashLoop(clone(written), this.crashLoopOptions);
    } else if (mode === 'never-ready') {
      this.recordEvent(written, 'Warning', 'Unhealthy', 'Readiness probe failed: HTTP probe failed with statuscode: 503', 'kubelet');
    } else {
      const uid = written.metadata.uid ?? '';
      const ready = (): void => this.enqueue({ type: 'pod-ready', ns, name, uid });
      if (readyDelay <= 0) ready();
      else this.later(readyDelay, ready);
    }
  }

  private setPodReady(ns: string, name: string, uid: string): void {
    const raw = this.store.raw(this.defs.pods, ns, name) as Pod | undefined;
    if (!raw || raw.metadata.uid !== uid || raw.status?.phase !== 'Running') return;
    const pod = clone(raw);
    const now = timestamp();
    const status = pod.status ?? {};
    status.containerStatuses = (status.containerStatuses ?? []).map((c) => ({
      ...c,
      ready: true,
      started: true,
      state: c.state.running ? c.state : { running: { startedAt: now } },
    }));
    status.conditions = (status.conditions ?? []).map((c) =>
      c.type === 'Ready' || c.type === 'ContainersReady' ? { type: c.type, status: 'True', lastProbeTime: null, lastTransitionTime: now } : c,
    );
    pod.status = status;
    if (this.changed(pod.status, raw.status)) this.write(this.defs.pods, pod);
  }

  private applyCrashLoop(pod: Pod, opts: CrashLoopOptions): void {
    const containerName = opts.container ?? pod.spec.containers[0]?.name ?? '';
    const ns = pod.metadata.namespace ?? '';
    const now = new Date();
    const started = timestamp(new Date(now.getTime() - 15_000));
    const finished = timestamp(new Date(now.getTime() - 5_000));
    const status = pod.status ?? {};
    status.containerStatuses = (status.containerStatuses ?? []).map((c) => {
      if (c.name !== containerName) return c;
      return {
        ...c,
        ready: false,
        started: false,
        restartCount: opts.restartCount ?? Math.max(c.restartCount, 5),
        state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off 2m40s restarting failed container=${c.name} pod=${pod.metadata.name}_${ns}(${pod.metadata.uid ?? ''})` } },
        lastState: {
          terminated: {
            exitCode: opts.exitCode ?? 1,
            reason: opts.reason ?? 'Error',
            startedAt: started,
            finishedAt: finished,
            containerID: c.containerID,
          },
        },
      };
    });
    const notReady = `containers with unready status: [${containerName}]`;
    status.conditions = (status.conditions ?? []).map((c) =>
      c.type === 'Ready' || c.type === 'ContainersReady'
        ? { type: c.type, status: 'False', reason: 'ContainersNotReady', message: notReady, lastProbeTime: null, lastTransitionTime: c.status === 'False' ? c.lastTransitionTime : timestamp(now) }
        : c,
    );
    pod.status = status;
    const written = this.write(this.defs.pods, pod);
    this.logs.set(ns, pod.metadata.name, containerName, true, opts.previousLogs ?? [
      'level=info msg="starting"',
      'level=error msg="failed to connect to database" err="dial tcp 10.0.0.5:5432: connect: connection refused"',
      'panic: unable to initialise storage',
    ]);
    if (opts.logs) this.logs.set(ns, pod.metadata.name, containerName, false, opts.logs);
    this.recordEvent(written, 'Warning', 'BackOff', `Back-off restarting failed container ${containerName} in pod ${pod.metadata.name}_${ns}(${pod.metadata.uid ?? ''})`, 'kubelet');
  }

  // -------------------------------------------------------------- hpa + gc

  private syncHpa(ns: string, name: string): void {
    const raw = this.store.raw(this.defs.hpa, ns, name);
    if (!raw || !isObject(raw.spec)) return;
    const ref = isObject(raw.spec.scaleTargetRef) ? raw.spec.scaleTargetRef : {};
    const target = ref.kind === 'Deployment' ? (this.store.raw(this.defs.deployments, ns, String(ref.name)) as Deployment | undefined) : undefined;
    const current = target?.status?.replicas ?? 0;
    const min = typeof raw.spec.minReplicas === 'number' ? raw.spec.minReplicas : 1;
    const max = typeof raw.spec.maxReplicas === 'number' ? raw.spec.maxReplicas : current;
    const status = {
      ...(isObject(raw.status) ? raw.status : {}),
      currentReplicas: current,
      desiredReplicas: Math.min(max, Math.max(min, current)),
    };
    if (this.changed(status, raw.status ?? {})) {
      const next = clone(raw);
      next.status = status;
      this.write(this.defs.hpa, next);
    }
  }

  private deleteNamespaceContents(ns: string): void {
    for (const def of STORED) {
      if (!def.namespaced) continue;
      for (const o of this.store.list(def.plural, { namespace: ns })) this.store.commitDelete(def, ns, o.metadata.name);
    }
  }

  private collectGarbage(ns: string | undefined, uid: string): void {
    for (const plural of ['replicasets', 'pods'] as const) {
      const def = this.defs[plural];
      for (const o of this.store.list(plural, ns === undefined ? {} : { namespace: ns })) {
        if ((o.metadata.ownerReferences ?? []).some((r) => r.uid === uid)) this.store.commitDelete(def, o.metadata.namespace, o.metadata.name);
      }
    }
  }
}
