import { UsageError } from './errors.js';
import { parseDuration } from './duration.js';
import type { ParamSpec, Procedure } from './procedure.js';

const RFC1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kubernetes resource.Quantity: a signed decimal with an optional binary/decimal suffix or exponent. */
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

export function validateK8sName(value: string, what: string): string {
  if (!value || value.length > 253 || !RFC1123_SUBDOMAIN.test(value)) {
    throw new UsageError(
      `invalid ${what} "${value}"`,
      'Kubernetes names are lowercase letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters',
    );
  }
  return value;
}

export function parseInteger(raw: string, what: string, min?: number, max?: number): number {
  const s = String(raw);
  // Written plainly or refused: " 3" may be a pasting accident, and 017 is octal to some tools.
  if (/^\s*[-+]?\d+\s*$/.test(s) && !/^(0|-?[1-9]\d*)$/.test(s)) {
    throw new UsageError(`${what} must be a whole number written plainly (no spaces, sign or leading zeros), got "${raw}"`);
  }
  if (!/^(0|-?[1-9]\d*)$/.test(s)) throw new UsageError(`${what} must be a whole number, got "${raw}"`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} is out of range: ${raw}`);
  if (min !== undefined && n < min) throw new UsageError(`${what} must be at least ${min}, got ${n}`);
  if (max !== undefined && n > max) throw new UsageError(`${what} must be at most ${max}, got ${n}`);
  return n;
}

export function validateQuantity(raw: string, what: string): string {
  if (!QUANTITY.test(raw)) throw new UsageError(`invalid ${what} "${raw}"`, 'use a Kubernetes quantity such as 500m, 1, 512Mi or 1Gi');
  return raw;
}

/** Parses a Kubernetes quantity to a number in base units (cores or bytes), for comparing requests and limits. */
export function quantityValue(q: string): number {
  const m = /^[+]?((?:\d+(?:\.\d*)?|\.\d+))(.*)$/.exec(q);
  if (!m) return NaN;
  const n = Number(m[1]);
  const suffix = m[2];
  const bin: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
  const dec: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
  if (suffix in bin) return n * bin[suffix];
  if (suffix in dec) return n * dec[suffix];
  if (/^[eE][+-]?\d+$/.test(suffix)) return n * 10 ** Number(suffix.slice(1));
  return NaN;
}

export function parseKeyValue(raw: string): { key: string; value: string } {
  const i = raw.indexOf('=');
  if (i <= 0) throw new UsageError(`expected KEY=VALUE, got "${raw}"`);
  const key = raw.slice(0, i);
  if (!ENV_NAME.test(key)) throw new UsageError(`invalid environment variable name "${key}"`);
  return { key, value: raw.slice(i + 1) };
}

export function validateEnvName(key: string): string {
  if (!ENV_NAME.test(key)) throw new UsageError(`invalid environment variable name "${key}"`);
  return key;
}

/** Converts one raw flag/argument value into its typed form, or throws UsageError naming the flag. */
export function parseParam(spec: ParamSpec, raw: unknown): unknown {
  const what = spec.flag ? (spec.flag.split(/[ ,]/).find((p) => p.startsWith('--')) ?? spec.name) : spec.name;
  if (raw === undefined) {
    if (spec.required) throw new UsageError(`missing ${what}`, spec.description);
    return spec.default === undefined
      ? undefined
      : spec.type === 'duration' && typeof spec.default === 'string'
        ? parseDuration(spec.default, what)
        : spec.default;
  }
  const one = (v: string): unknown => {
    switch (spec.type) {
      case 'int':
        return parseInteger(v, what, spec.min, spec.max);
      case 'duration':
        return parseDuration(v, what);
      case 'k8sName':
        return validateK8sName(v, what);
      case 'quantity':
        return validateQuantity(v, what);
      case 'boolean':
        return Boolean(v);
      case 'keyValue':
        return parseKeyValue(v);
      case 'list':
        return v
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
      case 'string':
        if (typeof v === 'string' && v.trim() === '') throw new UsageError(`${what} must not be empty`, spec.description);
        if (spec.choices && !spec.choices.includes(v)) throw new UsageError(`${what} must be one of ${spec.choices.join(', ')}, got "${v}"`);
        return v;
    }
  };
  if (typeof raw === 'boolean') return raw;
  if (Array.isArray(raw)) return raw.map((v) => one(String(v)));
  return one(String(raw));
}

/**
 * The params a procedure's first example spells (what `explain` and the reference docs show the steps
 * for). A value the example gives that does not parse is kept as written: the view still renders.
 */
export function exampleParams(proc: Pick<Procedure, 'params' | 'examples'>): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  const example = proc.examples[0] ?? [];
  for (const p of proc.params) {
    const i = p.flag ? example.indexOf(p.flag.split(/[ ,<[]+/).find((s) => s.startsWith('--')) ?? '') : -1;
    let raw: unknown = i >= 0 ? example[i + 1] : undefined;
    if (p.argument && raw === undefined) raw = example.find((w) => !w.startsWith('-'));
    try {
      params[p.name] = parseParam(p, raw ?? p.default);
    } catch {
      params[p.name] = raw ?? p.default;
    }
  }
  return params;
}
