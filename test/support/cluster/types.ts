/** Minimal, JSON-shaped Kubernetes object types the tests read and seed. */

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean | undefined;
  blockOwnerDeletion?: boolean | undefined;
}

export interface ObjectMeta {
  name: string;
  generateName?: string | undefined;
  namespace?: string | undefined;
  uid?: string | undefined;
  resourceVersion?: string | undefined;
  generation?: number | undefined;
  creationTimestamp?: string | undefined;
  deletionTimestamp?: string | undefined;
  labels?: Record<string, string> | undefined;
  annotations?: Record<string, string> | undefined;
  ownerReferences?: OwnerReference[] | undefined;
  finalizers?: string[] | undefined;
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[] | undefined;
}

export interface LabelSelector {
  matchLabels?: Record<string, string> | undefined;
  matchExpressions?: LabelSelectorRequirement[] | undefined;
}

export interface EnvVar {
  name: string;
  value?: string | undefined;
  valueFrom?: JsonObject | undefined;
}

export interface ResourceRequirements {
  limits?: Record<string, string | number> | undefined;
  requests?: Record<string, string | number> | undefined;
}

export interface Container {
  name: string;
  image?: string | undefined;
  env?: EnvVar[] | undefined;
  ports?: Array<{ containerPort: number; name?: string | undefined; protocol?: string | undefined }>;
  resources?: ResourceRequirements | undefined;
  command?: string[] | undefined;
  args?: string[] | undefined;
  [key: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[] | undefined;
  nodeName?: string | undefined;
  [key: string]: unknown;
}

export interface PodTemplateSpec {
  metadata?: { labels?: Record<string, string> | undefined; annotations?: Record<string, string> | undefined; [key: string]: unknown };
  spec: PodSpec;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string | undefined;
  message?: string | undefined;
  lastUpdateTime?: string | undefined;
  lastTransitionTime?: string | undefined;
  lastProbeTime?: string | null | undefined;
  [key: string]: unknown;
}

export interface DeploymentSpec {
  replicas?: number | undefined;
  selector: LabelSelector;
  template: PodTemplateSpec;
  paused?: boolean | undefined;
  progressDeadlineSeconds?: number | undefined;
  revisionHistoryLimit?: number | undefined;
  minReadySeconds?: number | undefined;
  strategy?: { type?: string | undefined; rollingUpdate?: { maxSurge?: number | string | undefined; maxUnavailable?: number | string | undefined } };
  [key: string]: unknown;
}

export interface DeploymentStatus {
  observedGeneration?: number | undefined;
  replicas?: number | undefined;
  updatedReplicas?: number | undefined;
  readyReplicas?: number | undefined;
  availableReplicas?: number | undefined;
  unavailableReplicas?: number | undefined;
  conditions?: Condition[] | undefined;
  collisionCount?: number | undefined;
  [key: string]: unknown;
}

export interface Deployment extends KubeObject {
  spec: DeploymentSpec;
  status?: DeploymentStatus | undefined;
}

export interface ReplicaSetStatus {
  replicas: number;
  fullyLabeledReplicas?: number | undefined;
  readyReplicas?: number | undefined;
  availableReplicas?: number | undefined;
  observedGeneration?: number | undefined;
  [key: string]: unknown;
}

export interface ReplicaSet extends KubeObject {
  spec: { replicas?: number | undefined; selector: LabelSelector; template: PodTemplateSpec; minReadySeconds?: number | undefined; [key: string]: unknown };
  status?: ReplicaSetStatus | undefined;
}

export interface ContainerState {
  running?: { startedAt?: string | undefined };
  waiting?: { reason?: string | undefined; message?: string | undefined };
  terminated?: {
    exitCode: number;
    reason?: string | undefined;
    message?: string | undefined;
    startedAt?: string | undefined;
    finishedAt?: string | undefined;
    containerID?: string | undefined;
  };
}

export interface ContainerStatus {
  name: string;
  ready: boolean;
  started?: boolean | undefined;
  restartCount: number;
  image: string;
  imageID: string;
  containerID?: string | undefined;
  state: ContainerState;
  lastState: ContainerState;
  [key: string]: unknown;
}

export interface PodStatus {
  phase?: string | undefined;
  conditions?: Condition[] | undefined;
  hostIP?: string | undefined;
  podIP?: string | undefined;
  podIPs?: Array<{ ip: string }>;
  startTime?: string | undefined;
  containerStatuses?: ContainerStatus[] | undefined;
  qosClass?: string | undefined;
  [key: string]: unknown;
}

export interface Pod extends KubeObject {
  spec: PodSpec;
  status?: PodStatus | undefined;
}

export interface NodeObject extends KubeObject {
  spec?: { unschedulable?: boolean | undefined; taints?: JsonObject[] | undefined; podCIDR?: string | undefined; [key: string]: unknown };
  status?: JsonObject | undefined;
}

/** A watch event as sent on the wire. */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject;
}
