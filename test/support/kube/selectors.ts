/** Label and field selector parsing/matching (string form as in `?labelSelector=`). */
import { isObject, type LabelSelector } from './types.js';

export type Predicate = (obj: unknown) => boolean;

export class SelectorError extends Error {}

interface Requirement {
  key: string;
  op: '=' | '!=' | 'in' | 'notin' | 'exists' | '!exists';
  values: string[];
}

/** Splits on commas that are not inside parentheses. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

function parseRequirements(selector: string): Requirement[] {
  return splitTerms(selector).map((term): Requirement => {
    let m = /^(\S+?)\s+(in|notin)\s+\((.*)\)$/.exec(term);
    if (m) return { key: m[1] ?? '', op: m[2] === 'in' ? 'in' : 'notin', values: (m[3] ?? '').split(',').map((v) => v.trim()) };
    m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (m) return { key: m[1] ?? '', op: m[2] === '!=' ? '!=' : '=', values: [(m[3] ?? '').trim()] };
    m = /^!\s*([^=!\s]+)$/.exec(term);
    if (m) return { key: m[1] ?? '', op: '!exists', values: [] };
    if (/^[^=!\s()]+$/.test(term)) return { key: term, op: 'exists', values: [] };
    throw new SelectorError(`unable to parse requirement: ${JSON.stringify(term)}`);
  });
}

function matches(reqs: Requirement[], get: (key: string) => string | undefined): boolean {
  return reqs.every((r) => {
    const v = get(r.key);
    switch (r.op) {
      case '=':
        return v === r.values[0];
      case '!=':
        return v !== r.values[0];
      case 'in':
        return v !== undefined && r.values.includes(v);
      case 'notin':
        return v === undefined || !r.values.includes(v);
      case 'exists':
        return v !== undefined;
      case '!exists':
        return v === undefined;
    }
  });
}

function labelsOf(obj: unknown): Record<string, string> {
  if (isObject(obj) && isObject(obj.metadata) && isObject(obj.metadata.labels)) {
    return obj.metadata.labels as Record<string, string>;
  }
  return {};
}

/** Parses a label selector string (`a=b,c!=d,e in (x,y),f,!g`). */
export function parseLabelSelector(selector: string | undefined): Predicate {
  if (!selector) return () => true;
  const reqs = parseRequirements(selector);
  return (obj) => {
    const labels = labelsOf(obj);
    return matches(reqs, (k) => labels[k]);
  };
}

/** Parses a field selector (`metadata.name=x,status.phase!=Running`); any dotted path is supported. */
export function parseFieldSelector(selector: string | undefined): Predicate {
  if (!selector) return () => true;
  const reqs = parseRequirements(selector);
  for (const r of reqs) {
    if (r.op !== '=' && r.op !== '!=') throw new SelectorError(`invalid field selector operator in ${JSON.stringify(selector)}`);
  }
  return (obj) =>
    matches(reqs, (path) => {
      let cur: unknown = obj;
      for (const part of path.split('.')) cur = isObject(cur) ? cur[part] : undefined;
      if (cur === undefined || cur === null) return path === 'metadata.namespace' || path.startsWith('spec.') ? '' : undefined;
      return typeof cur === 'object' ? JSON.stringify(cur) : String(cur);
    });
}

/** Matches an object's labels against a structured LabelSelector (deployments, replicasets). */
export function matchLabelSelector(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const v = l[e.key];
    const vals = e.values ?? [];
    if (e.operator === 'In' && (v === undefined || !vals.includes(v))) return false;
    if (e.operator === 'NotIn' && v !== undefined && vals.includes(v)) return false;
    if (e.operator === 'Exists' && v === undefined) return false;
    if (e.operator === 'DoesNotExist' && v !== undefined) return false;
  }
  return true;
}

/** Formats a LabelSelector as a selector string (`app=x,tier in (a,b)`). */
export function formatLabelSelector(selector: LabelSelector | undefined): string {
  if (!selector) return '';
  const parts = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions ?? []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${(e.values ?? []).join(',')})`);
    if (e.operator === 'NotIn') parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`);
    if (e.operator === 'Exists') parts.push(e.key);
    if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}
