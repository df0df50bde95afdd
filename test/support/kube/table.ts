/** Server-side printing: meta.k8s.io/v1 Table responses for `kubectl get` without -o. */
import type { ResourceDef } from './resources.js';
import { formatLabelSelector } from './selectors.js';
import { isObject, type Deployment, type JsonObject, type KubeObject, type NodeObject, type Pod, type ReplicaSet } from './types.js';

/** True when the Accept header asks for a Table (kubectl get's default). */
export function wantsTable(accept: string | undefined): boolean {
  return accept !== undefined && /as=Table/.test(accept);
}

function age(ts: unknown): string {
  if (typeof ts !== 'string') return '<unknown>';
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

type Column = [name: string, type: string, get: (o: KubeObject) => unknown, priority?: number];

const n = (v: unknown): number => (typeof v === 'number' ? v : 0);

function podStatus(p: Pod): string {
  if (p.metadata.deletionTimestamp) return 'Terminating';
  for (const c of p.status?.containerStatuses ?? []) {
    if (c.state.waiting?.reason) return c.state.waiting.reason;
    if (c.state.terminated?.reason) return c.state.terminated.reason;
  }
  return p.status?.phase ?? 'Pending';
}

const COLUMNS: Record<string, Column[]> = {
  Deployment: [
    ['Ready', 'string', (o) => `${n((o as Deployment).status?.readyReplicas)}/${n((o as Deployment).spec.replicas)}`],
    ['Up-to-date', 'integer', (o) => n((o as Deployment).status?.updatedReplicas)],
    ['Available', 'integer', (o) => n((o as Deployment).status?.availableReplicas)],
    ['Age', 'string', (o) => age(o.metadata.creationTimestamp)],
    ['Containers', 'string', (o) => (o as Deployment).spec.template.spec.containers.map((c) => c.name).join(','), 1],
    ['Images', 'string', (o) => (o as Deployment).spec.template.spec.containers.map((c) => c.image).join(','), 1],
    ['Selector', 'string', (o) => formatLabelSelector((o as Deployment).spec.selector), 1],
  ],
  ReplicaSet: [
    ['Desired', 'integer', (o) => n((o as ReplicaSet).spec.replicas)],
    ['Current', 'integer', (o) => n((o as ReplicaSet).status?.replicas)],
    ['Ready', 'integer', (o) => n((o as ReplicaSet).status?.readyReplicas)],
    ['Age', 'string', (o) => age(o.metadata.creationTimestamp)],
  ],
  Pod: [
    ['Ready', 'string', (o) => { const cs = (o as Pod).status?.containerStatuses ?? []; return `${cs.filter((c) => c.ready).length}/${(o as Pod).spec.containers.length}`; }],
    ['Status', 'string', (o) => podStatus(o as Pod)],
    ['Restarts', 'string', (o) => String(((o as Pod).status?.containerStatuses ?? []).reduce((s, c) => s + c.restartCount, 0))],
    ['Age', 'string', (o) => age(o.metadata.creationTimestamp)],
    ['IP', 'string', (o) => (o as Pod).status?.podIP ?? '<none>', 1],
    ['Node', 'string', (o) => (o as Pod).spec.nodeName ?? '<none>', 1],
  ],
  Node: [
    ['Status', 'string', (o) => { const node = o as NodeObject; const conds = isObject(node.status) && Array.isArray(node.status.conditions) ? node.status.conditions : []; const ready = conds.some((c) => isObject(c) && c.type === 'Ready' && c.status === 'True'); return `${ready ? 'Ready' : 'NotReady'}${node.spec?.unschedulable ? ',SchedulingDisabled' : ''}`; }],
    ['Roles', 'string', (o) => Object.keys(o.metadata.labels ?? {}).filter((k) => k.startsWith('node-role.kubernetes.io/')).map((k) => k.slice('node-role.kubernetes.io/'.length)).join(',') || '<none>'],
    ['Age', 'string', (o) => age(o.metadata.creationTimestamp)],
    ['Version', 'string', (o) => { const s = (o as NodeObject).status; return isObject(s) && isObject(s.nodeInfo) ? s.nodeInfo.kubeletVersion : ''; }],
  ],
  HorizontalPodAutoscaler: [
    ['Reference', 'string', (o) => { const ref = isObject(o.spec) && isObject(o.spec.scaleTargetRef) ? o.spec.scaleTargetRef : {}; return `${String(ref.kind)}/${String(ref.name)}`; }],
    ['Targets', 'string', (o) => { const spec = isObject(o.spec) ? o.spec : {}; const m = Array.isArray(spec.metrics) ? spec.metrics[0] : undefined; const t = isObject(m) && isObject(m.resource) && isObject(m.resource.target) ? m.resource.target.averageUtilization : spec.targetCPUUtilizationPercentage; return `cpu: <unknown>/${String(t)}%`; }],
    ['MinPods', 'integer', (o) => (isObject(o.spec) ? o.spec.minReplicas : 1)],
    ['MaxPods', 'integer', (o) => (isObject(o.spec) ? o.spec.maxReplicas : 0)],
    ['Replicas', 'integer', (o) => (isObject(o.status) ? n(o.status.currentReplicas) : 0)],
    ['Age', 'string', (o) => age(o.metadata.creationTimestamp)],
  ],
  Secret: [
    ['Type', 'string', (o) => o.type],
    ['Data', 'integer', (o) => (isObject(o.data) ? Object.keys(o.data).length : 0)],
    ['Age', 'string', (o) => age(o.metadata.creationTimestamp)],
  ],
  ConfigMap: [
    ['Data', 'integer', (o) => (isObject(o.data) ? Object.keys(o.data).length : 0) + (isObject(o.binaryData) ? Object.keys(o.binaryData).length : 0)],
    ['Age', 'string', (o) => age(o.metadata.creationTimestamp)],
  ],
  Lease: [
    ['Holder', 'string', (o) => (isObject(o.spec) ? o.spec.holderIdentity ?? '' : '')],
    ['Age', 'string', (o) => age(o.metadata.creationTimestamp)],
  ],
  Namespace: [
    ['Status', 'string', (o) => (isObject(o.status) ? o.status.phase : 'Active')],
    ['Age', 'string', (o) => age(o.metadata.creationTimestamp)],
  ],
};

const EVENT_COLUMNS: Column[] = [
  ['Last Seen', 'string', (o) => age(o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp)],
  ['Type', 'string', (o) => o.type],
  ['Reason', 'string', (o) => o.reason],
  ['Object', 'string', (o) => { const io = isObject(o.involvedObject) ? o.involvedObject : isObject(o.regarding) ? o.regarding : {}; return `${String(io.kind).toLowerCase()}/${String(io.name)}`; }],
  ['Message', 'string', (o) => o.message ?? o.note],
];

/** Renders objects as a meta.k8s.io/v1 Table. */
export function toTable(def: ResourceDef, items: KubeObject[], resourceVersion: string): JsonObject {
  const cols: Column[] = def.kind === 'Event' ? EVENT_COLUMNS : [['Name', 'string', (o) => o.metadata.name], ...(COLUMNS[def.kind] ?? [['Age', 'string', (o) => age(o.metadata.creationTimestamp)]])];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: cols.map(([name, type, , priority]) => ({
      name,
      type,
      format: name === 'Name' ? 'name' : '',
      description: name,
      priority: priority ?? 0,
    })),
    rows: items.map((o) => ({
      cells: cols.map(([, , get]) => get(o) ?? ''),
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}
