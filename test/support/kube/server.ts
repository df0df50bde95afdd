/**
 * HTTP routing for the fake Kubernetes API server: discovery, CRUD/list/watch
 * on the registered resources, subresources (status, scale, log), metrics,
 * dry runs, preconditions, fault injection and the request log.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KubeController } from './controller.js';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION } from './discovery.js';
import type { PodLogs } from './logs.js';
import type { MetricsSource } from './metrics.js';
import { applyPatch, PatchError } from './patch.js';
import { findServed, groupVersion, resolveStored, type ResourceDef, type ResourceVersion } from './resources.js';
import { parseFieldSelector, parseLabelSelector, SelectorError, formatLabelSelector } from './selectors.js';
import { GoneError, timestamp, type KubeStore, type StoreChange } from './store.js';
import { toTable, wantsTable } from './table.js';
import { clone, isObject, type JsonObject, type KubeObject, type Pod } from './types.js';
import { applyDefaults, validateObject, validateScale, type FieldError } from './validation.js';
import { randomSuffix } from './controller.js';
import { decodeProtobufObject, PROTOBUF } from './proto.js';

/** One request as seen by the server (the request log). */
export interface RecordedRequest {
  method: string;
  /** URL path without the query string. */
  path: string;
  query: Record<string, string>;
  /** Request Content-Type (without parameters), if any. */
  contentType?: string;
  /** Response status; 0 while pending (or for hung requests). */
  status: number;
  /** True when the request had `?dryRun=All`. */
  dryRun: boolean;
  /** Parsed JSON request body (writes only). */
  body?: unknown;
  /** True for `watch=true` requests. */
  watch: boolean;
}

/** An injected failure; see {@link KubeApiServer.faults}. */
export interface Fault {
  /** HTTP method to match (any when omitted). */
  method?: string;
  /** Exact path, or a RegExp tested against the path (no query string). */
  path: string | RegExp;
  /** Number of matching requests to affect (default 1; Infinity for all). */
  times?: number;
  /** Status to answer with (default 500), as a Status body. */
  status?: number;
  /** Status message (default 'injected fault'). */
  message?: string;
  /** Never answer (until the server closes). */
  hang?: boolean;
  /** Delay before answering; with no status given, the request is then served normally. */
  delayMs?: number;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: JsonObject,
  ) {
    super(message);
  }
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export function statusBody(code: number, reason: string, message: string, details?: JsonObject): JsonObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

export interface ServerContext {
  store: KubeStore;
  controller: KubeController;
  logs: PodLogs;
  metrics: MetricsSource;
  faults: Array<Fault & { remaining: number }>;
  requests: RecordedRequest[];
  hostPort: () => string;
}

interface Target {
  def: ResourceDef;
  storage: ResourceDef;
  version: ResourceVersion;
  gv: string;
  namespace?: string | undefined;
  name?: string | undefined;
  sub?: string | undefined;
}

function qualified(def: ResourceDef): string {
  return def.group ? `${def.plural}.${def.group}` : def.plural;
}

function notFound(def: ResourceDef, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualified(def)} "${name}" not found`, { name, group: def.group, kind: def.plural });
}

function invalid(def: ResourceDef, name: string, errors: FieldError[]): ApiError {
  const kind = def.group ? `${def.kind}.${def.group}` : def.kind;
  const msgs = errors.map((e) => e.message);
  const message = `${kind} "${name}" is invalid: ${msgs.length === 1 ? msgs[0] ?? '' : `[${msgs.join(', ')}]`}`;
  return new ApiError(422, 'Invalid', message, {
    name,
    group: def.group,
    kind: def.kind,
    causes: errors.map((e) => ({ reason: e.reason, message: e.message.slice(e.field.length + 2), field: e.field })),
  });
}

function conflict(def: ResourceDef, name: string): ApiError {
  return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(def)} "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, group: def.group, kind: def.plural });
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function int(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** Creates the request handler; `close()` ends watches, follows and hung requests. */
export function createHandler(ctx: ServerContext): { handle: (req: IncomingMessage, res: ServerResponse) => void; close: () => void } {
  const open = new Set<ServerResponse>();
  let closed = false;

  function send(res: ServerResponse, entry: RecordedRequest, code: number, body: unknown, contentType = 'application/json'): void {
    entry.status = code;
    if (res.headersSent || res.destroyed) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
    res.end(text);
  }

  function sendError(res: ServerResponse, entry: RecordedRequest, err: ApiError): void {
    send(res, entry, err.code, statusBody(err.code, err.reason, err.message, err.details));
  }

  const external = (t: Target, obj: KubeObject): KubeObject => {
    const out = t.version.toExternal ? t.version.toExternal(clone(obj)) : clone(obj);
    out.apiVersion = t.gv;
    out.kind = t.def.kind;
    return out;
  };

  const internal = (t: Target, obj: KubeObject): KubeObject => (t.version.toInternal ? t.version.toInternal(obj) : obj);

  function parseTarget(segments: string[]): Target | 'discovery' | undefined {
    let group = '';
    let version: string | undefined;
    let rest: string[];
    if (segments[0] === 'api') {
      version = segments[1];
      rest = segments.slice(2);
    } else if (segments[0] === 'apis') {
      group = segments[1] ?? '';
      version = segments[2];
      rest = segments.slice(3);
    } else return undefined;
    if (!version || rest.length === 0) return 'discovery';
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub, ...extra] = rest;
    if (!plural || extra.length > 0) return undefined;
    const def = findServed(group, version, plural);
    if (!def) return undefined;
    if (namespace !== undefined && !def.namespaced) return undefined;
    const v = def.versions.find((x) => x.version === version);
    if (!v) return undefined;
    const storage = def.storageOf ? resolveStored(def.storageOf) : def;
    return { def, storage, version: v, gv: groupVersion(group, version), namespace, name, sub };
  }

  function discovery(segments: string[]): unknown {
    if (segments[0] === 'api') return segments.length === 1 ? apiVersions(ctx.hostPort()) : apiResourceList('', segments[1] ?? '');
    if (segments.length === 1) return apiGroupList();
    if (segments.length === 2) return apiGroup(segments[1] ?? '');
    return apiResourceList(segments[1] ?? '', segments[2] ?? '');
  }

  function listObjects(t: Target, q: Record<string, string>): KubeObject[] {
    return ctx.store.list(t.storage.plural, {
      ...(t.namespace === undefined ? {} : { namespace: t.namespace }),
      ...(q.labelSelector ? { labelSelector: q.labelSelector } : {}),
      ...(q.fieldSelector ? { fieldSelector: q.fieldSelector } : {}),
    });
  }

  function startWatch(t: Target, q: Record<string, string>, res: ServerResponse, entry: RecordedRequest): void {
    const byLabel = parseLabelSelector(q.labelSelector);
    const byField = parseFieldSelector(q.fieldSelector);
    const matches = (o: KubeObject): boolean =>
      (t.namespace === undefined || o.metadata.namespace === t.namespace) && (t.name === undefined || o.metadata.name === t.name) && byLabel(o) && byField(o);
    const rv = q.resourceVersion;
    let backlog: StoreChange[] = [];
    if (rv && rv !== '0' && q.sendInitialEvents !== 'true') {
      try {
        backlog = ctx.store.changesSince(t.storage, Number(rv));
      } catch (err) {
        if (!(err instanceof GoneError)) throw err;
        entry.status = 200;
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(`${JSON.stringify({ type: 'ERROR', object: statusBody(410, 'Expired', err.message) })}\n`);
        return;
      }
    }
    entry.status = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    open.add(res);
    const write = (type: string, obj: KubeObject): void => {
      if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify({ type, object: obj })}\n`);
    };
    if (!rv || rv === '0' || q.sendInitialEvents === 'true') {
      for (const o of listObjects(t, q)) if (matches(o)) write('ADDED', external(t, o));
      if (q.sendInitialEvents === 'true') {
        write('BOOKMARK', { apiVersion: t.gv, kind: t.def.kind, metadata: { name: '', resourceVersion: ctx.store.resourceVersion, annotations: { 'k8s.io/initial-events-end': 'true' } } });
      }
    }
    for (const c of backlog) if (matches(c.event.object)) write(c.event.type, external(t, c.event.object));
    const unsubscribe = ctx.store.subscribe((c) => {
      if (c.resource.plural === t.storage.plural && matches(c.event.object)) write(c.event.type, external(t, c.event.object));
    });
    const timeout = int(q.timeoutSeconds);
    const timer = timeout !== undefined && timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    const cleanup = (): void => {
      unsubscribe();
      if (timer) clearTimeout(timer);
      open.delete(res);
    };
    // Note: IncomingMessage 'close' fires once the request body is consumed, so only the response's 'close' (socket gone) counts.
    res.on('close', cleanup);
  }

  /** Validates and (unless dry run) stores a create; returns the stored/would-be object. */
  function create(t: Target, body: KubeObject, dryRun: boolean): KubeObject {
    const obj = internal(t, body);
    if (!isObject(obj.metadata)) obj.metadata = { name: '' };
    const meta = obj.metadata;
    if (t.namespace !== undefined) {
      if (meta.namespace && meta.namespace !== t.namespace) {
        throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = t.namespace;
    }
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomSuffix()}`;
    const name = meta.name ?? '';
    if (name && ctx.store.raw(t.storage, meta.namespace, name)) {
      throw new ApiError(409, 'AlreadyExists', `${qualified(t.def)} "${name}" already exists`, { name, group: t.def.group, kind: t.def.plural });
    }
    applyDefaults(obj);
    const errors = validateObject(obj, undefined);
    if (errors.length > 0) throw invalid(t.def, name, errors);
    const prepared = ctx.store.prepare(t.storage, obj, undefined);
    if (t.storage.plural === 'deployments' || t.storage.plural === 'replicasets') delete prepared.status;
    if (t.storage.plural === 'pods') prepared.status = { phase: 'Pending' };
    return dryRun ? prepared : ctx.store.commit(t.storage, prepared);
  }

  /** Replaces an object (or its status); `next` is in storage form. */
  function update(t: Target, existing: KubeObject, next: KubeObject, dryRun: boolean, sub: string | undefined): KubeObject {
    const name = existing.metadata.name;
    if (!isObject(next.metadata)) next.metadata = { name };
    if (next.metadata.name && next.metadata.name !== name) {
      throw new ApiError(400, 'BadRequest', `the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`);
    }
    next.metadata.name = name;
    next.metadata.namespace = existing.metadata.namespace;
    const rv = next.metadata.resourceVersion;
    if (rv && rv !== existing.metadata.resourceVersion) throw conflict(t.def, name);
    if (next.metadata.uid && next.metadata.uid !== existing.metadata.uid) throw conflict(t.def, name);
    let obj = next;
    if (sub === 'status') {
      obj = clone(existing);
      if (next.status === undefined) delete obj.status;
      else obj.status = next.status;
    } else if (t.storage.subresources.includes('status')) {
      if (existing.status === undefined) delete obj.status;
      else obj.status = clone(existing.status);
    }
    applyDefaults(obj);
    const errors = validateObject(obj, existing);
    if (errors.length > 0) throw invalid(t.def, name, errors);
    const prepared = ctx.store.prepare(t.storage, obj, existing);
    return dryRun ? prepared : ctx.store.commit(t.storage, prepared);
  }

  function toScale(obj: KubeObject): JsonObject {
    const spec = isObject(obj.spec) ? obj.spec : {};
    const status = isObject(obj.status) ? obj.status : {};
    const selector = isObject(spec.selector) ? formatLabelSelector(spec.selector) : '';
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: {
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
        creationTimestamp: obj.metadata.creationTimestamp,
      },
      spec: { replicas: spec.replicas ?? 0 },
      status: { replicas: typeof status.replicas === 'number' ? status.replicas : 0, selector },
    };
  }

  function scaleWrite(t: Target, existing: KubeObject, scale: JsonObject, dryRun: boolean): JsonObject {
    const name = existing.metadata.name;
    const errors = validateScale(scale);
    if (errors.length > 0) throw new ApiError(422, 'Invalid', `Scale.autoscaling "${name}" is invalid: ${errors.map((e) => e.message).join(', ')}`, { name, group: 'autoscaling', kind: 'Scale', causes: errors.map((e) => ({ reason: e.reason, message: e.message, field: e.field })) });
    const meta = isObject(scale.metadata) ? scale.metadata : {};
    if (typeof meta.resourceVersion === 'string' && meta.resourceVersion !== '' && meta.resourceVersion !== existing.metadata.resourceVersion) throw conflict(t.def, name);
    const spec = isObject(scale.spec) ? scale.spec : {};
    const next = clone(existing);
    if (isObject(next.spec)) next.spec.replicas = typeof spec.replicas === 'number' ? spec.replicas : 0;
    delete next.metadata.resourceVersion;
    return toScale(update(t, existing, next, dryRun, undefined));
  }

  function podLog(t: Target, q: Record<string, string>, res: ServerResponse, entry: RecordedRequest): void {
    const ns = t.namespace ?? '';
    const name = t.name ?? '';
    const pod = ctx.store.raw(t.storage, ns, name) as Pod | undefined;
    if (!pod) throw notFound(t.def, name);
    const names = pod.spec.containers.map((c) => c.name);
    let container = q.container;
    if (!container) {
      if (names.length !== 1) {
        throw new ApiError(400, 'BadRequest', `a container name must be specified for pod ${name}, choose one of: [${names.join(' ')}]`);
      }
      container = names[0] ?? '';
    }
    if (!names.includes(container) && !(pod.spec.initContainers ?? []).some((c) => c.name === container)) {
      throw new ApiError(400, 'BadRequest', `container ${container} is not valid for pod ${name}`);
    }
    const previous = q.previous === 'true';
    const cs = pod.status?.containerStatuses?.find((c) => c.name === container);
    if (previous && !ctx.logs.has(ns, name, container, true)) {
      throw new ApiError(400, 'BadRequest', `previous terminated container "${container}" in pod "${name}" not found`);
    }
    if (!previous && (!cs || (cs.state.waiting && cs.restartCount === 0))) {
      throw new ApiError(400, 'BadRequest', `container "${container}" in pod "${name}" is waiting to start: ${cs?.state.waiting?.reason ?? 'ContainerCreating'}`);
    }
    const text = ctx.logs.read(ns, name, {
      container,
      previous,
      tailLines: int(q.tailLines),
      sinceSeconds: int(q.sinceSeconds),
      sinceTime: q.sinceTime,
      timestamps: q.timestamps === 'true',
      limitBytes: int(q.limitBytes),
    });
    if (q.follow !== 'true' || previous) return send(res, entry, 200, text, 'text/plain');
    entry.status = 200;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' });
    res.write(text);
    open.add(res);
    const timestamps = q.timestamps === 'true';
    const unfollow = ctx.logs.follow(ns, name, container, (l) => res.write(`${timestamps ? `${l.time.toISOString()} ` : ''}${l.text}\n`));
    const unsubscribe = ctx.store.subscribe((c) => {
      if (c.resource.plural === 'pods' && c.event.type === 'DELETED' && c.event.object.metadata.uid === pod.metadata.uid) res.end();
    });
    res.on('close', () => {
      unfollow();
      unsubscribe();
      open.delete(res);
    });
  }

  function metrics(t: Target, q: Record<string, string>): unknown {
    const items = t.def.kind === 'PodMetrics' ? ctx.metrics.podMetrics(t.namespace, q.labelSelector) : ctx.metrics.nodeMetrics(q.labelSelector);
    if (t.name !== undefined) {
      const hit = items.find((i) => i.metadata.name === t.name);
      if (!hit) throw new ApiError(404, 'NotFound', `${t.def.plural}.metrics.k8s.io "${t.name}" not found`, { name: t.name, group: 'metrics.k8s.io', kind: t.def.plural });
      return hit;
    }
    return { kind: `${t.def.kind}List`, apiVersion: t.gv, metadata: {}, items };
  }

  async function route(req: IncomingMessage, res: ServerResponse, entry: RecordedRequest, bodyBytes: Buffer): Promise<void> {
    const rawBody = bodyBytes.toString('utf8');
    const method = entry.method;
    const q = entry.query;
    const segments = entry.path.split('/').filter((s) => s !== '');
    if (entry.path === '/version' || entry.path === '/version/') return send(res, entry, 200, SERVER_VERSION);
    if (['/healthz', '/livez', '/readyz'].includes(entry.path)) return send(res, entry, 200, 'ok', 'text/plain');
    const target = parseTarget(segments);
    if (target === undefined) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    if (target === 'discovery') {
      if (method !== 'GET') throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      const doc = discovery(segments);
      if (!doc) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      return send(res, entry, 200, doc);
    }
    const t = target;
    const dryRun = entry.dryRun;
    if (q.dryRun !== undefined && q.dryRun !== 'All') throw new ApiError(400, 'BadRequest', `dryRun: Unsupported value: "${q.dryRun}": supported values: "All"`);
    let body: unknown;
    const ct = entry.contentType ?? 'application/json';
    if (rawBody !== '' && (method === 'POST' || method === 'PUT') && ct === PROTOBUF) {
      try {
        body = decodeProtobufObject(bodyBytes);
      } catch (err) {
        throw new ApiError(415, 'UnsupportedMediaType', err instanceof Error ? err.message : String(err));
      }
      entry.body = body;
    } else if (rawBody !== '' && (method === 'POST' || method === 'PUT') && ct !== 'application/json') {
      throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`);
    } else if (rawBody.trim() !== '') {
      try {
        body = JSON.parse(rawBody);
      } catch {
        throw new ApiError(400, 'BadRequest', 'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml');
      }
      entry.body = body;
    }
    if (t.def.virtual) {
      if (method !== 'GET') throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      return send(res, entry, 200, metrics(t, q));
    }
    if (t.namespace === undefined && t.def.namespaced && t.name !== undefined) {
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    const name = t.name;
    if (name === undefined) {
      if (method === 'GET') {
        if (q.watch === 'true' || q.watch === '1') {
          entry.watch = true;
          return startWatch(t, q, res, entry);
        }
        const items = listObjects(t, q).map((o) => external(t, o));
        const list = { kind: `${t.def.kind}List`, apiVersion: t.gv, metadata: { resourceVersion: ctx.store.resourceVersion }, items };
        return send(res, entry, 200, wantsTable(req.headers.accept) ? toTable(t.def, list.items, list.metadata.resourceVersion) : list);
      }
      if (method === 'POST') {
        if (!isObject(body)) throw new ApiError(400, 'BadRequest', 'request body must be a JSON object');
        const created = create(t, body as KubeObject, dryRun);
        return send(res, entry, 201, external(t, created));
      }
      if (method === 'DELETE') {
        const victims = listObjects(t, q);
        if (!dryRun) for (const v of victims) ctx.store.commitDelete(t.storage, v.metadata.namespace, v.metadata.name);
        return send(res, entry, 200, { kind: `${t.def.kind}List`, apiVersion: t.gv, metadata: { resourceVersion: ctx.store.resourceVersion }, items: victims.map((o) => external(t, o)) });
      }
      throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }

    const existing = ctx.store.raw(t.storage, t.namespace, name);
    const sub = t.sub;
    if (sub !== undefined && !t.def.subresources.includes(sub)) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    if (sub === 'log') {
      if (method !== 'GET') throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      return podLog(t, q, res, entry);
    }
    if (!existing) {
      if (method === 'PUT' && sub === undefined && t.storage.plural === 'leases' && isObject(body)) {
        return send(res, entry, 201, external(t, create(t, body as KubeObject, dryRun)));
      }
      throw notFound(t.def, name);
    }
    const contentType = entry.contentType ?? '';

    if (sub === 'scale') {
      if (method === 'GET') return send(res, entry, 200, toScale(existing));
      if (method === 'PUT') {
        if (!isObject(body)) throw new ApiError(400, 'BadRequest', 'request body must be a JSON object');
        return send(res, entry, 200, scaleWrite(t, existing, body, dryRun));
      }
      if (method === 'PATCH') {
        const patched = patchOrThrow(contentType, toScale(existing), body);
        return send(res, entry, 200, scaleWrite(t, existing, patched, dryRun));
      }
      throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }

    switch (method) {
      case 'GET':
        if (sub === undefined && wantsTable(req.headers.accept)) return send(res, entry, 200, toTable(t.def, [external(t, existing)], ctx.store.resourceVersion));
        return send(res, entry, 200, external(t, existing));
      case 'PUT': {
        if (!isObject(body)) throw new ApiError(400, 'BadRequest', 'request body must be a JSON object');
        const next = internal(t, body as KubeObject);
        return send(res, entry, 200, external(t, update(t, existing, next, dryRun, sub)));
      }
      case 'PATCH': {
        const current = external(t, existing);
        const patched = patchOrThrow(contentType, current, body) as KubeObject;
        const patchMeta = isObject(body) && isObject(body.metadata) ? body.metadata : {};
        if (typeof patchMeta.resourceVersion !== 'string' && isObject(patched.metadata)) patched.metadata.resourceVersion = existing.metadata.resourceVersion;
        const next = internal(t, patched);
        return send(res, entry, 200, external(t, update(t, existing, next, dryRun, sub)));
      }
      case 'DELETE': {
        const pre = isObject(body) && isObject(body.preconditions) ? body.preconditions : {};
        if ((pre.resourceVersion && pre.resourceVersion !== existing.metadata.resourceVersion) || (pre.uid && pre.uid !== existing.metadata.uid)) {
          throw conflict(t.def, name);
        }
        const deleted = dryRun ? clone(existing) : ctx.store.commitDelete(t.storage, t.namespace, name) ?? clone(existing);
        if (t.storage.plural === 'pods') {
          deleted.metadata.deletionTimestamp = timestamp();
          deleted.metadata.deletionGracePeriodSeconds = 0;
          return send(res, entry, 200, external(t, deleted));
        }
        return send(res, entry, 200, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: { name, group: t.def.group, kind: t.def.plural, uid: existing.metadata.uid },
        });
      }
      default:
        throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  function patchOrThrow(contentType: string, current: JsonObject, body: unknown): JsonObject {
    if (body === undefined) throw new ApiError(400, 'BadRequest', 'the body of the request was empty');
    try {
      return applyPatch(contentType, current, body);
    } catch (err) {
      if (err instanceof PatchError) {
        if (err.code === 400 && /unsupported patch content type/.test(err.message)) throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`);
        throw new ApiError(err.code, err.code === 400 ? 'BadRequest' : 'Invalid', err.message);
      }
      throw err;
    }
  }

  function matchFault(entry: RecordedRequest): (Fault & { remaining: number }) | undefined {
    for (const f of ctx.faults) {
      if (f.remaining <= 0) continue;
      if (f.method && f.method.toUpperCase() !== entry.method) continue;
      if (typeof f.path === 'string' ? f.path !== entry.path : !f.path.test(entry.path)) continue;
      f.remaining--;
      return f;
    }
    return undefined;
  }

  async function handleAsync(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const contentType = req.headers['content-type']?.split(';')[0]?.trim();
    const entry: RecordedRequest = {
      method: (req.method ?? 'GET').toUpperCase(),
      path: url.pathname,
      query,
      ...(contentType ? { contentType } : {}),
      status: 0,
      dryRun: query.dryRun === 'All',
      watch: false,
    };
    ctx.requests.push(entry);
    const bodyBytes = await readBody(req);
    if (closed) return;
    const fault = matchFault(entry);
    if (fault) {
      if (fault.hang) {
        open.add(res);
        res.on('close', () => open.delete(res));
        return;
      }
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.status !== undefined || !fault.delayMs) {
        const code = fault.status ?? 500;
        return send(res, entry, code, statusBody(code, REASONS[code] ?? 'Unknown', fault.message ?? 'injected fault'));
      }
    }
    try {
      await route(req, res, entry, bodyBytes);
    } catch (err) {
      if (err instanceof ApiError) return sendError(res, entry, err);
      if (err instanceof SelectorError) return sendError(res, entry, new ApiError(400, 'BadRequest', err.message));
      sendError(res, entry, new ApiError(500, 'InternalError', `Internal error occurred: ${err instanceof Error ? err.stack ?? err.message : String(err)}`));
    }
  }

  return {
    handle(req, res) {
      void handleAsync(req, res);
    },
    close() {
      closed = true;
      for (const res of open) res.destroy();
      open.clear();
    },
  };
}

