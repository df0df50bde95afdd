/**
 * PATCH implementations: RFC 7386 JSON merge patch, RFC 6902 JSON patch, and
 * Kubernetes strategic merge patch (with merge keys for the well-known lists
 * and the `$patch`, `$setElementOrder/`, `$retainKeys`, `$deleteFromPrimitiveList/`
 * directives).
 */
import { clone, isObject, type JsonObject } from './types.js';

export class PatchError extends Error {
  constructor(
    message: string,
    /** HTTP status to answer with (400 malformed, 422 does not apply). */
    readonly code: 400 | 422 = 422,
  ) {
    super(message);
  }
}

export const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

/** Applies a patch of the given content type to `original` (not mutated). */
export function applyPatch(contentType: string, original: JsonObject, patch: unknown): JsonObject {
  const type = contentType.split(';')[0]?.trim().toLowerCase();
  let result: unknown;
  if (type === PATCH_TYPES.json) result = jsonPatch(original, patch);
  else if (type === PATCH_TYPES.merge) result = mergePatch(original, patch);
  else if (type === PATCH_TYPES.strategic) result = strategicMergePatch(original, patch);
  else throw new PatchError(`unsupported patch content type ${JSON.stringify(contentType)}`, 400);
  if (!isObject(result)) throw new PatchError('patch result is not an object');
  return result;
}

// ---------------------------------------------------------------- merge patch

/** RFC 7386 JSON merge patch. */
export function mergePatch(original: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(original) ? clone(original) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ----------------------------------------------------------------- json patch

function parsePointer(path: unknown): string[] {
  if (typeof path !== 'string') throw new PatchError('json patch: path must be a string', 400);
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`json patch: invalid pointer ${JSON.stringify(path)}`, 400);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

type Container = JsonObject | unknown[];

function resolveParent(doc: unknown, tokens: string[], op: string): { parent: Container; key: string } {
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObject(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw new PatchError(`jsonpatch ${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw new PatchError(`jsonpatch ${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
  return { parent: cur, key: tokens[tokens.length - 1] ?? '' };
}

function arrayIndex(arr: unknown[], key: string, allowEnd: boolean, op: string): number {
  if (key === '-' && allowEnd) return arr.length;
  if (!/^\d+$/.test(key)) throw new PatchError(`jsonpatch ${op}: invalid array index ${key}`);
  const i = Number(key);
  if (i > arr.length || (!allowEnd && i === arr.length)) throw new PatchError(`jsonpatch ${op} operation does not apply: index ${i} out of bounds`);
  return i;
}

function getAt(doc: unknown, tokens: string[], op: string): unknown {
  if (tokens.length === 0) return doc;
  const { parent, key } = resolveParent(doc, tokens, op);
  const v = Array.isArray(parent) ? parent[arrayIndex(parent, key, false, op)] : parent[key];
  if (v === undefined) throw new PatchError(`jsonpatch ${op} operation does not apply: doc is missing key: /${tokens.join('/')}`);
  return v;
}

function removeAt(doc: unknown, tokens: string[], op: string): unknown {
  const { parent, key } = resolveParent(doc, tokens, op);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, key, false, op), 1)[0];
  if (!(key in parent)) throw new PatchError(`jsonpatch ${op} operation does not apply: doc is missing key: /${tokens.join('/')}`);
  const v = parent[key];
  delete parent[key];
  return v;
}

function addAt(doc: unknown, tokens: string[], value: unknown, op: string, replace: boolean): unknown {
  if (tokens.length === 0) return clone(value);
  const { parent, key } = resolveParent(doc, tokens, op);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, !replace, op);
    if (replace) parent[i] = clone(value);
    else parent.splice(i, 0, clone(value));
  } else {
    if (replace && !(key in parent)) throw new PatchError(`jsonpatch replace operation does not apply: doc is missing key: /${tokens.join('/')}`);
    parent[key] = clone(value);
  }
  return doc;
}

/** RFC 6902 JSON patch. */
export function jsonPatch(original: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) throw new PatchError('json patch must be an array of operations', 400);
  let doc = clone(original);
  for (const raw of patch) {
    if (!isObject(raw) || typeof raw.op !== 'string') throw new PatchError('json patch: invalid operation', 400);
    const path = parsePointer(raw.path);
    switch (raw.op) {
      case 'add':
        doc = addAt(doc, path, raw.value, 'add', false);
        break;
      case 'replace':
        doc = addAt(doc, path, raw.value, 'replace', true);
        break;
      case 'remove':
        removeAt(doc, path, 'remove');
        break;
      case 'move': {
        const v = removeAt(doc, parsePointer(raw.from), 'move');
        doc = addAt(doc, path, v, 'move', false);
        break;
      }
      case 'copy':
        doc = addAt(doc, path, getAt(doc, parsePointer(raw.from), 'copy'), 'copy', false);
        break;
      case 'test':
        if (JSON.stringify(getAt(doc, path, 'test')) !== JSON.stringify(raw.value)) {
          throw new PatchError(`testing value /${path.join('/')} failed`);
        }
        break;
      default:
        throw new PatchError(`json patch: unknown op ${JSON.stringify(raw.op)}`, 400);
    }
  }
  return doc;
}

// ------------------------------------------------------ strategic merge patch

/** Lists merged element-wise by a key (patchStrategy=merge, patchMergeKey) in the Kubernetes types. */
export const MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  ports: 'containerPort',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  resourceClaims: 'name',
  conditions: 'type',
  ownerReferences: 'uid',
  taints: 'key',
  addresses: 'type',
};

/** Lists of primitives with patchStrategy=merge (set union). */
const MERGE_PRIMITIVE_LISTS = new Set(['finalizers']);

/** Removes `$`-directives recursively (for values inserted as-is). */
function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((e) => !(isObject(e) && typeof e.$patch === 'string')).map(stripDirectives);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, val] of Object.entries(v)) {
    if (k.startsWith('$')) continue;
    if (val === null) continue;
    out[k] = stripDirectives(val);
  }
  return out;
}

function sameKey(a: unknown, b: unknown): boolean {
  return a === b || (a !== undefined && b !== undefined && String(a) === String(b));
}

function mergeList(field: string, original: unknown, patch: unknown[]): unknown[] {
  if (patch.some((e) => isObject(e) && e.$patch === 'replace')) {
    return patch.filter((e) => !(isObject(e) && e.$patch === 'replace')).map(stripDirectives);
  }
  const mergeKey = MERGE_KEYS[field];
  const base = Array.isArray(original) ? clone(original) : [];
  if (mergeKey && patch.every(isObject)) {
    for (const p of patch) {
      if (!isObject(p)) continue;
      const key = p[mergeKey];
      if (p.$patch === 'delete') {
        for (let i = base.length - 1; i >= 0; i--) {
          const el = base[i];
          if (isObject(el) && sameKey(el[mergeKey], key)) base.splice(i, 1);
        }
        continue;
      }
      const idx = key === undefined ? -1 : base.findIndex((el) => isObject(el) && sameKey(el[mergeKey], key));
      if (idx >= 0) base[idx] = strategicMergePatch(base[idx], p);
      else base.push(stripDirectives(p));
    }
    return base;
  }
  if (MERGE_PRIMITIVE_LISTS.has(field)) {
    for (const p of patch) if (!base.includes(p)) base.push(p);
    return base;
  }
  return patch.map(stripDirectives);
}

function reorder(list: unknown[], order: unknown[], mergeKey: string | undefined): unknown[] {
  const keyOf = (e: unknown): string => JSON.stringify(mergeKey && isObject(e) ? e[mergeKey] : e);
  const pos = new Map(order.map((o, i) => [keyOf(o), i] as const));
  return list
    .map((e, i) => ({ e, i, p: pos.get(keyOf(e)) ?? order.length + i }))
    .sort((a, b) => a.p - b.p)
    .map((x) => x.e);
}

/**
 * Kubernetes strategic merge patch. Returns undefined when the patch deletes
 * the whole value (`$patch: delete` on a map).
 */
export function strategicMergePatch(original: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return Array.isArray(patch) ? patch.map(stripDirectives) : clone(patch);
  if (patch.$patch === 'replace') return stripDirectives(patch);
  if (patch.$patch === 'delete') return undefined;
  const out: JsonObject = isObject(original) ? clone(original) : {};
  const orders: Array<[string, unknown[]]> = [];
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) {
      if (Array.isArray(v)) orders.push([k.slice('$setElementOrder/'.length), v]);
      continue;
    }
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((e) => !v.includes(e));
      continue;
    }
    if (k.startsWith('$')) continue;
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v)) {
      out[k] = mergeList(k, out[k], v);
    } else if (isObject(v)) {
      const merged = strategicMergePatch(out[k], v);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else {
      out[k] = v;
    }
  }
  for (const [field, order] of orders) {
    const cur = out[field];
    if (Array.isArray(cur)) out[field] = reorder(cur, order, MERGE_KEYS[field]);
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys.map(String));
    for (const k of Object.keys(out)) if (!keep.has(k) && !(k in patch)) delete out[k];
  }
  return out;
}
