/**
 * The resource registry: which kinds the fake API server serves, under which
 * group/versions, plus version conversions (storage version is listed first).
 */
import { isObject, type JsonObject, type KubeObject } from './types.js';

export interface ResourceVersion {
  version: string;
  /** Converts a stored (storage-version) object to this version. */
  toExternal?: (obj: KubeObject) => KubeObject;
  /** Converts an object of this version to the storage version. */
  toInternal?: (obj: KubeObject) => KubeObject;
}

export interface ResourceDef {
  group: string;
  /** Versions served; the first one is the storage and preferred version. */
  versions: ResourceVersion[];
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  categories?: string[];
  /** Subresources served besides the main resource (e.g. status, scale, log). */
  subresources: string[];
  /** metadata.generation is maintained (bumped on spec changes). */
  generation: boolean;
  /** Served but not stored: objects are computed (metrics). */
  virtual?: boolean;
  /** Shares storage with another resource (plural), converting through toInternal/toExternal. */
  storageOf?: string;
}

const ALL = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function hpaToV1(obj: KubeObject): KubeObject {
  const spec = isObject(obj.spec) ? obj.spec : {};
  const status = isObject(obj.status) ? obj.status : {};
  const metrics = Array.isArray(spec.metrics) ? spec.metrics : [];
  let target: number | undefined;
  for (const m of metrics) {
    if (isObject(m) && m.type === 'Resource' && isObject(m.resource) && m.resource.name === 'cpu' && isObject(m.resource.target)) {
      const u = m.resource.target.averageUtilization;
      if (typeof u === 'number') target = u;
    }
  }
  let current: number | undefined;
  for (const m of Array.isArray(status.currentMetrics) ? status.currentMetrics : []) {
    if (isObject(m) && isObject(m.resource) && m.resource.name === 'cpu' && isObject(m.resource.current)) {
      const u = m.resource.current.averageUtilization;
      if (typeof u === 'number') current = u;
    }
  }
  const out: KubeObject = {
    apiVersion: 'autoscaling/v1',
    kind: 'HorizontalPodAutoscaler',
    metadata: obj.metadata,
    spec: {
      scaleTargetRef: spec.scaleTargetRef,
      minReplicas: spec.minReplicas,
      maxReplicas: spec.maxReplicas,
      ...(target === undefined ? {} : { targetCPUUtilizationPercentage: target }),
    },
    status: {
      ...(status.observedGeneration === undefined ? {} : { observedGeneration: status.observedGeneration }),
      ...(status.lastScaleTime === undefined ? {} : { lastScaleTime: status.lastScaleTime }),
      currentReplicas: status.currentReplicas ?? 0,
      desiredReplicas: status.desiredReplicas ?? 0,
      ...(current === undefined ? {} : { currentCPUUtilizationPercentage: current }),
    },
  };
  return out;
}

function hpaFromV1(obj: KubeObject): KubeObject {
  const spec = isObject(obj.spec) ? obj.spec : {};
  const status = isObject(obj.status) ? obj.status : {};
  const target = spec.targetCPUUtilizationPercentage;
  const v2Spec: JsonObject = {
    scaleTargetRef: spec.scaleTargetRef,
    maxReplicas: spec.maxReplicas,
  };
  if (spec.minReplicas !== undefined) v2Spec.minReplicas = spec.minReplicas;
  if (typeof target === 'number') {
    v2Spec.metrics = [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: target } } }];
  }
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: obj.metadata,
    spec: v2Spec,
    status: {
      currentReplicas: status.currentReplicas ?? 0,
      desiredReplicas: status.desiredReplicas ?? 0,
      ...(status.lastScaleTime === undefined ? {} : { lastScaleTime: status.lastScaleTime }),
    },
  };
}

function eventToEventsV1(obj: KubeObject): KubeObject {
  const o = obj as JsonObject;
  const out: KubeObject = {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: obj.metadata,
    eventTime: o.eventTime ?? null,
    reportingController: o.reportingComponent || (isObject(o.source) ? o.source.component : undefined) || '',
    reportingInstance: o.reportingInstance ?? '',
    action: o.action ?? o.reason,
    reason: o.reason,
    regarding: o.involvedObject,
    note: o.message,
    type: o.type,
    deprecatedSource: o.source,
    deprecatedFirstTimestamp: o.firstTimestamp,
    deprecatedLastTimestamp: o.lastTimestamp,
    deprecatedCount: o.count,
  };
  return out;
}

function eventFromEventsV1(obj: KubeObject): KubeObject {
  const o = obj as JsonObject;
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: obj.metadata,
    involvedObject: o.regarding ?? {},
    reason: o.reason,
    message: o.note,
    type: o.type,
    action: o.action,
    eventTime: o.eventTime ?? null,
    reportingComponent: o.reportingController ?? '',
    reportingInstance: o.reportingInstance ?? '',
    source: o.deprecatedSource ?? {},
    firstTimestamp: o.deprecatedFirstTimestamp ?? null,
    lastTimestamp: o.deprecatedLastTimestamp ?? null,
    count: o.deprecatedCount ?? 1,
  };
}

export const RESOURCES: ResourceDef[] = [
  { group: '', versions: [{ version: 'v1' }], plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'], subresources: ['status'], generation: false },
  { group: '', versions: [{ version: 'v1' }], plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po'], verbs: ALL, categories: ['all'], subresources: ['status', 'log'], generation: false },
  { group: '', versions: [{ version: 'v1' }], plural: 'events', singular: 'event', kind: 'Event', namespaced: true, shortNames: ['ev'], verbs: ALL, subresources: [], generation: false },
  { group: '', versions: [{ version: 'v1' }], plural: 'secrets', singular: 'secret', kind: 'Secret', namespaced: true, shortNames: [], verbs: ALL, subresources: [], generation: false },
  { group: '', versions: [{ version: 'v1' }], plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'], verbs: ALL, subresources: [], generation: false },
  { group: '', versions: [{ version: 'v1' }], plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, shortNames: ['no'], verbs: ALL, subresources: ['status'], generation: false },
  { group: 'apps', versions: [{ version: 'v1' }], plural: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], verbs: ALL, categories: ['all'], subresources: ['status', 'scale'], generation: true },
  { group: 'apps', versions: [{ version: 'v1' }], plural: 'replicasets', singular: 'replicaset', kind: 'ReplicaSet', namespaced: true, shortNames: ['rs'], verbs: ALL, categories: ['all'], subresources: ['status', 'scale'], generation: true },
  {
    group: 'autoscaling',
    versions: [{ version: 'v2' }, { version: 'v1', toExternal: hpaToV1, toInternal: hpaFromV1 }],
    plural: 'horizontalpodautoscalers', singular: 'horizontalpodautoscaler', kind: 'HorizontalPodAutoscaler', namespaced: true,
    shortNames: ['hpa'], verbs: ALL, categories: ['all'], subresources: ['status'], generation: true,
  },
  { group: 'coordination.k8s.io', versions: [{ version: 'v1' }], plural: 'leases', singular: 'lease', kind: 'Lease', namespaced: true, shortNames: [], verbs: ALL, subresources: [], generation: false },
  {
    group: 'events.k8s.io', versions: [{ version: 'v1', toExternal: eventToEventsV1, toInternal: eventFromEventsV1 }], plural: 'events', singular: 'event', kind: 'Event',
    namespaced: true, shortNames: ['ev'], verbs: ALL, subresources: [], generation: false, storageOf: 'events',
  },
  { group: 'metrics.k8s.io', versions: [{ version: 'v1beta1' }], plural: 'pods', singular: '', kind: 'PodMetrics', namespaced: true, shortNames: [], verbs: ['get', 'list'], subresources: [], generation: false, virtual: true },
  { group: 'metrics.k8s.io', versions: [{ version: 'v1beta1' }], plural: 'nodes', singular: '', kind: 'NodeMetrics', namespaced: false, shortNames: [], verbs: ['get', 'list'], subresources: [], generation: false, virtual: true },
];

/** Resources with their own storage (not virtual, not views of another resource). */
export const STORED = RESOURCES.filter((r) => !r.virtual && !r.storageOf);

export function groupVersion(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}

/** Finds the resource served at group/version/plural. */
export function findServed(group: string, version: string, plural: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.group === group && r.plural === plural && r.versions.some((v) => v.version === version));
}

/**
 * Resolves a user-friendly resource name for the store: plural, singular, kind,
 * short name, or `plural.group` (e.g. 'deploy', 'Deployment', 'deployments.apps').
 */
export function resolveStored(name: string): ResourceDef {
  const lower = name.toLowerCase();
  const [base, ...groupParts] = lower.split('.');
  const group = groupParts.join('.');
  const hit = STORED.find(
    (r) =>
      (group === '' || r.group === group) &&
      (r.plural === base || r.singular === base || r.kind.toLowerCase() === base || r.shortNames.includes(base ?? '')),
  );
  if (!hit) throw new Error(`kube test store: unknown resource ${JSON.stringify(name)}`);
  return hit;
}

/** Finds the stored resource for an object's kind (and apiVersion group). */
export function resourceForObject(obj: { apiVersion?: string; kind?: string }): ResourceDef {
  const group = obj.apiVersion?.includes('/') ? obj.apiVersion.split('/')[0] : '';
  const hit = STORED.find((r) => r.kind === obj.kind && (r.group === group || group === 'events.k8s.io'));
  if (!hit) throw new Error(`kube test store: unknown kind ${String(obj.apiVersion)}/${String(obj.kind)}`);
  return hit;
}

export function storageGroupVersion(def: ResourceDef): string {
  return groupVersion(def.group, def.versions[0]?.version ?? 'v1');
}
