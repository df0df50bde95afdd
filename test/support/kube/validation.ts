/** API-server style defaulting and (basic) validation of incoming objects. */
import { matchLabelSelector } from './selectors.js';
import { isObject, type Container, type JsonObject, type KubeObject, type PodSpec, type PodTemplateSpec } from './types.js';

export interface FieldError {
  field: string;
  reason: 'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueDuplicate' | 'FieldValueForbidden';
  message: string;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
/** Kubernetes resource.Quantity syntax. */
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$/;

function fmt(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
}

class Errors {
  readonly list: FieldError[] = [];
  invalid(field: string, value: unknown, detail: string): void {
    this.list.push({ field, reason: 'FieldValueInvalid', message: `${field}: Invalid value: ${fmt(value)}: ${detail}` });
  }
  required(field: string, detail = ''): void {
    this.list.push({ field, reason: 'FieldValueRequired', message: `${field}: Required value${detail ? `: ${detail}` : ''}` });
  }
  duplicate(field: string, value: unknown): void {
    this.list.push({ field, reason: 'FieldValueDuplicate', message: `${field}: Duplicate value: ${fmt(value)}` });
  }
  forbidden(field: string, detail: string): void {
    this.list.push({ field, reason: 'FieldValueForbidden', message: `${field}: Forbidden: ${detail}` });
  }
}

export function isDns1123Subdomain(name: string): boolean {
  return name.length <= 253 && DNS1123_SUBDOMAIN.test(name);
}

export function isDns1123Label(name: string): boolean {
  return name.length <= 63 && DNS1123_LABEL.test(name);
}

function validateLabelKey(key: string): boolean {
  const parts = key.split('/');
  if (parts.length > 2) return false;
  const name = parts[parts.length - 1] ?? '';
  if (parts.length === 2 && !isDns1123Subdomain(parts[0] ?? '')) return false;
  return name.length <= 63 && QUALIFIED_NAME.test(name);
}

function validateMeta(obj: KubeObject, e: Errors): void {
  const name = obj.metadata.name;
  if (!name) e.required('metadata.name', 'name or generateName is required');
  else if (!isDns1123Subdomain(name)) {
    e.invalid('metadata.name', name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
  }
  validateLabels(obj.metadata.labels, 'metadata.labels', e);
}

function validateLabels(labels: unknown, path: string, e: Errors): void {
  if (labels === undefined || labels === null) return;
  if (!isObject(labels)) return e.invalid(path, labels, 'must be a map');
  for (const [k, v] of Object.entries(labels)) {
    if (!validateLabelKey(k)) e.invalid(path, k, 'name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must start and end with an alphanumeric character');
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) e.invalid(`${path}`, v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
  }
}

function validateReplicas(v: unknown, path: string, e: Errors): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v)) e.invalid(path, v, 'must be an integer');
  else if (v < 0) e.invalid(path, v, 'must be greater than or equal to 0');
}

function validateQuantities(m: unknown, path: string, e: Errors): void {
  if (!isObject(m)) return;
  for (const [k, v] of Object.entries(m)) {
    const s = typeof v === 'number' ? String(v) : v;
    if (typeof s !== 'string' || !QUANTITY.test(s)) {
      e.invalid(`${path}[${k}]`, v, "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
    } else if (s.startsWith('-')) e.invalid(`${path}[${k}]`, v, 'must be greater than or equal to 0');
  }
}

function validateContainers(list: unknown, path: string, e: Errors, required: boolean): void {
  if (list === undefined && !required) return;
  if (!Array.isArray(list) || (required && list.length === 0)) return e.required(path);
  const names = new Set<string>();
  list.forEach((c: unknown, i) => {
    const p = `${path}[${i}]`;
    if (!isObject(c)) return e.invalid(p, c, 'must be an object');
    const name = c.name;
    if (typeof name !== 'string' || name === '') e.required(`${p}.name`);
    else if (!isDns1123Label(name)) e.invalid(`${p}.name`, name, 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\', and must start and end with an alphanumeric character');
    else if (names.has(name)) e.duplicate(`${p}.name`, name);
    else names.add(name);
    if (typeof c.image !== 'string' || c.image.trim() === '') e.required(`${p}.image`);
    if (isObject(c.resources)) {
      validateQuantities(c.resources.limits, `${p}.resources.limits`, e);
      validateQuantities(c.resources.requests, `${p}.resources.requests`, e);
    }
    if (Array.isArray(c.env)) {
      c.env.forEach((ev: unknown, j) => {
        if (!isObject(ev) || typeof ev.name !== 'string' || ev.name === '') e.required(`${p}.env[${j}].name`);
        else if (ev.value !== undefined && ev.valueFrom !== undefined) e.invalid(`${p}.env[${j}].valueFrom`, '', 'may not be specified when `value` is not empty');
      });
    }
    if (Array.isArray(c.ports)) {
      c.ports.forEach((port: unknown, j) => {
        const n = isObject(port) ? port.containerPort : undefined;
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) e.invalid(`${p}.ports[${j}].containerPort`, n, 'must be between 1 and 65535, inclusive');
      });
    }
  });
}

function validatePodSpec(spec: unknown, path: string, e: Errors): void {
  if (!isObject(spec)) return e.required(path);
  validateContainers(spec.containers, `${path}.containers`, e, true);
  validateContainers(spec.initContainers, `${path}.initContainers`, e, false);
}

function validateTemplated(obj: KubeObject, e: Errors): void {
  const spec = obj.spec;
  if (!isObject(spec)) return e.required('spec');
  validateReplicas(spec.replicas, 'spec.replicas', e);
  const selector = spec.selector;
  if (!isObject(selector) || (Object.keys(selector.matchLabels ?? {}).length === 0 && !Array.isArray(selector.matchExpressions))) {
    e.required('spec.selector');
  }
  const template = spec.template;
  if (!isObject(template)) return e.required('spec.template');
  const tmeta = isObject(template.metadata) ? template.metadata : {};
  validateLabels(tmeta.labels, 'spec.template.metadata.labels', e);
  if (isObject(selector) && !matchLabelSelector(selector, tmeta.labels as Record<string, string> | undefined)) {
    e.invalid('spec.template.metadata.labels', tmeta.labels ?? {}, '`selector` does not match template `labels`');
  }
  validatePodSpec(template.spec, 'spec.template.spec', e);
}

/** Validates an object of a stored kind; `old` is the current object for updates. Returns field errors. */
export function validateObject(obj: KubeObject, old: KubeObject | undefined): FieldError[] {
  const e = new Errors();
  validateMeta(obj, e);
  switch (obj.kind) {
    case 'Deployment':
    case 'ReplicaSet':
      validateTemplated(obj, e);
      if (old && isObject(old.spec) && isObject(obj.spec) && JSON.stringify(old.spec.selector) !== JSON.stringify(obj.spec.selector)) {
        e.invalid('spec.selector', obj.spec.selector, 'field is immutable');
      }
      break;
    case 'Pod':
      validatePodSpec(obj.spec, 'spec', e);
      break;
    case 'HorizontalPodAutoscaler': {
      const spec = isObject(obj.spec) ? obj.spec : {};
      const ref = isObject(spec.scaleTargetRef) ? spec.scaleTargetRef : undefined;
      if (!ref || !ref.kind) e.required('spec.scaleTargetRef.kind');
      if (!ref || !ref.name) e.required('spec.scaleTargetRef.name');
      const min = spec.minReplicas;
      const max = spec.maxReplicas;
      if (typeof min === 'number' && min < 1) e.invalid('spec.minReplicas', min, 'must be greater than or equal to 1');
      if (typeof max !== 'number' || max < 1) e.invalid('spec.maxReplicas', max, 'must be greater than or equal to 1');
      else if (typeof min === 'number' && max < min) e.invalid('spec.maxReplicas', max, 'must be greater than or equal to `minReplicas`');
      break;
    }
    case 'Secret':
      if (isObject(obj.data)) {
        for (const [k, v] of Object.entries(obj.data)) {
          if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) e.invalid(`data[${k}]`, '<secret contents redacted>', 'illegal base64 data');
        }
      }
      break;
    case 'Lease': {
      const d = isObject(obj.spec) ? obj.spec.leaseDurationSeconds : undefined;
      if (d !== undefined && (typeof d !== 'number' || d <= 0)) e.invalid('spec.leaseDurationSeconds', d, 'must be greater than 0');
      break;
    }
    default:
      break;
  }
  return e.list;
}

/** Validates an autoscaling/v1 Scale sent to a `/scale` subresource. */
export function validateScale(scale: JsonObject): FieldError[] {
  const e = new Errors();
  const spec = isObject(scale.spec) ? scale.spec : {};
  validateReplicas(spec.replicas, 'spec.replicas', e);
  return e.list;
}

// ----------------------------------------------------------------- defaults

function defaultContainer(c: Container): void {
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  if (c.imagePullPolicy === undefined) {
    const image = c.image ?? '';
    const lastSegment = image.split('/').pop() ?? '';
    const tag = image.includes('@') ? 'digest' : lastSegment.includes(':') ? lastSegment.split(':').pop() : 'latest';
    c.imagePullPolicy = tag === 'latest' ? 'Always' : 'IfNotPresent';
  }
  c.resources ??= {};
  for (const p of c.ports ?? []) p.protocol ??= 'TCP';
}

export function defaultPodSpec(spec: PodSpec): void {
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  if (Array.isArray(spec.containers)) spec.containers.forEach((c) => isObject(c) && defaultContainer(c));
  if (Array.isArray(spec.initContainers)) spec.initContainers.forEach((c) => isObject(c) && defaultContainer(c));
}

function defaultTemplate(t: unknown): void {
  if (!isObject(t)) return;
  const tpl = t as unknown as PodTemplateSpec;
  tpl.metadata ??= {};
  if (isObject(tpl.spec)) defaultPodSpec(tpl.spec);
}

/** Applies the API server's defaults for the kinds that have interesting ones. Mutates obj. */
export function applyDefaults(obj: KubeObject): void {
  const spec = isObject(obj.spec) ? obj.spec : undefined;
  switch (obj.kind) {
    case 'Deployment':
      if (!spec) return;
      spec.replicas ??= 1;
      spec.revisionHistoryLimit ??= 10;
      spec.progressDeadlineSeconds ??= 600;
      spec.strategy ??= { type: 'RollingUpdate' };
      if (isObject(spec.strategy)) {
        spec.strategy.type ??= 'RollingUpdate';
        if (spec.strategy.type === 'RollingUpdate') spec.strategy.rollingUpdate ??= { maxSurge: '25%', maxUnavailable: '25%' };
      }
      defaultTemplate(spec.template);
      break;
    case 'ReplicaSet':
      if (!spec) return;
      spec.replicas ??= 1;
      defaultTemplate(spec.template);
      break;
    case 'Pod':
      if (spec && Array.isArray(spec.containers)) defaultPodSpec(spec as unknown as PodSpec);
      break;
    case 'HorizontalPodAutoscaler':
      if (!spec) return;
      spec.minReplicas ??= 1;
      if (!Array.isArray(spec.metrics) || spec.metrics.length === 0) {
        spec.metrics = [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }];
      }
      break;
    case 'Secret': {
      obj.type ??= 'Opaque';
      const stringData = obj.stringData;
      if (isObject(stringData)) {
        const data = isObject(obj.data) ? obj.data : {};
        for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(String(v)).toString('base64');
        obj.data = data;
      }
      delete obj.stringData;
      break;
    }
    default:
      break;
  }
}
