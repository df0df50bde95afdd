/**
 * In-memory object storage with Kubernetes metadata bookkeeping (uid,
 * resourceVersion from one global counter, creationTimestamp, generation) and a
 * change log that watches replay from a resourceVersion.
 */
import { randomUUID } from 'node:crypto';
import { resolveStored, resourceForObject, storageGroupVersion, type ResourceDef } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { clone, isObject, type KubeObject, type WatchEvent } from './types.js';

/** RFC 3339 timestamp with second precision, like the API server writes. */
export function timestamp(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** JSON with recursively sorted keys, nulls/empties dropped: for "did this change" and hashing. */
export function canonicalJson(v: unknown): string {
  const norm = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(norm);
    if (!isObject(x)) return x;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(x).sort()) {
      const val = norm(x[k]);
      if (val === null || val === undefined) continue;
      if (isObject(val) && Object.keys(val).length === 0) continue;
      if (Array.isArray(val) && val.length === 0) continue;
      out[k] = val;
    }
    return out;
  };
  return JSON.stringify(norm(v)) ?? 'null';
}

export interface ListOptions {
  /** Restrict to one namespace (omit for all namespaces / cluster-scoped). */
  namespace?: string | undefined;
  /** Label selector string, e.g. `app=web,tier!=db`. */
  labelSelector?: string | undefined;
  /** Field selector string, e.g. `metadata.name=web`. */
  fieldSelector?: string | undefined;
}

/** A committed change, as delivered to store subscribers (the controller, watches). */
export interface StoreChange {
  resource: ResourceDef;
  event: WatchEvent;
  resourceVersion: number;
}

export class GoneError extends Error {}

const LOG_LIMIT = 50_000;

export class KubeStore {
  private readonly data = new Map<string, Map<string, KubeObject>>();
  private rv = 0;
  private readonly log: StoreChange[] = [];
  private readonly listeners = new Set<(c: StoreChange) => void>();

  /** Current (latest) global resourceVersion. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  private bucket(def: ResourceDef): Map<string, KubeObject> {
    let b = this.data.get(def.plural);
    if (!b) {
      b = new Map();
      this.data.set(def.plural, b);
    }
    return b;
  }

  private static key(def: ResourceDef, namespace: string | undefined, name: string): string {
    return def.namespaced ? `${namespace ?? ''}/${name}` : name;
  }

  /**
   * Gets a copy of one object. `resource` may be a plural, singular, kind or short
   * name ('deployments', 'deploy', 'Deployment'); namespace is ignored for cluster-scoped kinds.
   */
  get<T extends KubeObject = KubeObject>(resource: string, namespace: string | undefined, name: string): T | undefined {
    const def = resolveStored(resource);
    const obj = this.bucket(def).get(KubeStore.key(def, namespace, name));
    return obj ? (clone(obj) as T) : undefined;
  }

  /** Lists copies of objects, sorted by namespace/name. */
  list<T extends KubeObject = KubeObject>(resource: string, opts: ListOptions = {}): T[] {
    const def = resolveStored(resource);
    const byLabel = parseLabelSelector(opts.labelSelector);
    const byField = parseFieldSelector(opts.fieldSelector);
    return [...this.bucket(def).entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o)
      .filter((o) => (opts.namespace === undefined || !def.namespaced || o.metadata.namespace === opts.namespace) && byLabel(o) && byField(o))
      .map((o) => clone(o) as T);
  }

  /**
   * Creates or replaces an object directly (no validation, no preconditions):
   * for seeding tests. Fills uid/creationTimestamp/generation/resourceVersion and
   * notifies the controller and watches. Returns the stored copy.
   */
  put<T extends KubeObject>(obj: T): T {
    const def = resourceForObject(obj);
    const existing = this.bucket(def).get(KubeStore.key(def, obj.metadata.namespace, obj.metadata.name));
    return this.commit(def, this.prepare(def, clone(obj), existing)) as T;
  }

  /** Deletes an object directly; returns the deleted object or undefined. */
  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const def = resolveStored(resource);
    return this.commitDelete(def, namespace, name);
  }

  // ------------------------------------------------------------ internal API

  /** @internal The raw stored object (not a copy). */
  raw(def: ResourceDef, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.bucket(def).get(KubeStore.key(def, namespace, name));
  }

  /**
   * @internal Fills server-managed metadata for a create (existing undefined) or an
   * update; does not store anything (dry runs stop here).
   */
  prepare(def: ResourceDef, obj: KubeObject, existing: KubeObject | undefined): KubeObject {
    obj.apiVersion = storageGroupVersion(def);
    obj.kind = def.kind;
    const meta = obj.metadata;
    if (!def.namespaced) delete meta.namespace;
    if (existing) {
      meta.uid = existing.metadata.uid;
      meta.creationTimestamp = existing.metadata.creationTimestamp;
      meta.resourceVersion = existing.metadata.resourceVersion;
      if (def.generation) {
        const prev = existing.metadata.generation ?? 1;
        meta.generation = canonicalJson(obj.spec) === canonicalJson(existing.spec) ? prev : prev + 1;
      } else delete meta.generation;
    } else {
      meta.uid = randomUUID();
      meta.creationTimestamp = timestamp();
      delete meta.resourceVersion;
      if (def.generation) meta.generation = 1;
      else delete meta.generation;
    }
    for (const k of ['labels', 'annotations'] as const) {
      const m = meta[k];
      if (m && Object.keys(m).length === 0) delete meta[k];
    }
    return obj;
  }

  /** @internal Stores a prepared object with a new resourceVersion and emits ADDED/MODIFIED. */
  commit(def: ResourceDef, obj: KubeObject): KubeObject {
    const ns = obj.metadata.namespace;
    if (def.namespaced && ns && def.plural !== 'namespaces') this.ensureNamespace(ns);
    const b = this.bucket(def);
    const key = KubeStore.key(def, ns, obj.metadata.name);
    const type = b.has(key) ? 'MODIFIED' : 'ADDED';
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    b.set(key, obj);
    this.emit({ resource: def, event: { type, object: clone(obj) }, resourceVersion: this.rv });
    return clone(obj);
  }

  /** @internal Deletes and emits DELETED (the object carries the deletion's resourceVersion). */
  commitDelete(def: ResourceDef, namespace: string | undefined, name: string): KubeObject | undefined {
    const b = this.bucket(def);
    const key = KubeStore.key(def, namespace, name);
    const obj = b.get(key);
    if (!obj) return undefined;
    b.delete(key);
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    this.emit({ resource: def, event: { type: 'DELETED', object: clone(obj) }, resourceVersion: this.rv });
    return clone(obj);
  }

  private ensureNamespace(ns: string): void {
    const def = resolveStored('namespaces');
    if (this.bucket(def).has(ns)) return;
    const obj: KubeObject = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    };
    this.commit(def, this.prepare(def, obj, undefined));
  }

  private emit(change: StoreChange): void {
    this.log.push(change);
    if (this.log.length > LOG_LIMIT) this.log.splice(0, this.log.length - LOG_LIMIT);
    for (const l of [...this.listeners]) l(change);
  }

  /** @internal Changes to one stored resource after `resourceVersion`; throws GoneError when compacted. */
  changesSince(def: ResourceDef, resourceVersion: number): StoreChange[] {
    const first = this.log[0];
    if (first && resourceVersion < first.resourceVersion - 1) throw new GoneError(`too old resource version: ${resourceVersion} (${first.resourceVersion})`);
    return this.log.filter((c) => c.resource.plural === def.plural && c.resourceVersion > resourceVersion);
  }

  /** Subscribes to every committed change; returns an unsubscribe function. */
  subscribe(listener: (c: StoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
