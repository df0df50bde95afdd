import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { UsageError } from '../../core/errors.js';
import { byText } from '../../core/format.js';

/** Default: `ERROR <Type>` (also `[ERROR] Type:` and `FATAL Type`); JSON lines are read by their fields instead. */
export const DEFAULT_ERROR_PATTERN = String.raw`\b(?:ERROR|FATAL)\b\]?:?\s+(?<type>[A-Za-z_][\w.$:-]*?)(?::|\s|$)`;

/** Compiles a user pattern; it must have a named group `type`. */
export function compileErrorPattern(source: string, what = '--pattern'): RegExp {
  let re: RegExp;
  try {
    re = new RegExp(source);
  } catch (err) {
    throw new UsageError(`${what} is not a valid regular expression: ${(err as Error).message}`);
  }
  if (!source.includes('(?<type>')) throw new UsageError(`${what} needs a named group "type"`, String.raw`for example: 'level=error type=(?<type>\w+)'`);
  return re;
}

const ERROR_LEVELS = new Set(['error', 'err', 'fatal', 'critical', 'crit', 'alert', 'emerg', 'panic']);

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;
}

/** The error type of a JSON log line with a level field at error or above, else null. */
function jsonErrorType(o: Record<string, unknown>): string | null {
  const level = str(o.level) ?? str(o.severity) ?? str(o.lvl) ?? str((o.log as Record<string, unknown> | undefined)?.level);
  if (!level || !ERROR_LEVELS.has(level.toLowerCase())) return null;
  const e = o.error ?? o.err ?? o.exception;
  if (e && typeof e === 'object') {
    const r = e as Record<string, unknown>;
    return str(r.type) ?? str(r.name) ?? str(r.kind) ?? str(r.code) ?? 'unknown';
  }
  const asString = str(e);
  if (asString) return /^([A-Za-z_][\w.$]*)/.exec(asString)?.[1] ?? 'unknown';
  return str(o.error_type) ?? str(o.errorType) ?? str(o.type) ?? 'unknown';
}

/**
 * The error type of one log line, or null when it is not an error. A custom pattern decides alone;
 * the default reads JSON lines by their level and error fields and plain lines with `ERROR <Type>`.
 */
export function errorTypeOf(line: string, pattern: RegExp | null): string | null {
  if (pattern) {
    const m = pattern.exec(line);
    return m ? m.groups?.type || 'unknown' : null;
  }
  const t = line.trimStart();
  if (t.startsWith('{')) {
    try {
      const o = JSON.parse(t) as unknown;
      if (o && typeof o === 'object' && !Array.isArray(o)) return jsonErrorType(o as Record<string, unknown>);
    } catch {
      // Not JSON after all: fall through to the text pattern.
    }
  }
  const m = new RegExp(DEFAULT_ERROR_PATTERN).exec(line);
  if (m) return m.groups?.type || 'unknown';
  return /\b(?:ERROR|FATAL)\b/.test(line) ? 'unknown' : null;
}

/** One error type across the pods: how often, where, since when, and one example line. */
export interface ErrorGroup {
  type: string;
  count: number;
  pods: string[];
  firstSeen?: string;
  lastSeen?: string;
  sample: string;
}

const TIMESTAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))\s/;

/** Splits the RFC 3339 prefix that `timestamps=true` adds to every line. */
export function splitTimestamp(line: string): { time?: string; text: string } {
  const m = TIMESTAMP.exec(line);
  if (!m) return { text: line };
  const ms = Date.parse(m[1].replace(/(\.\d{3})\d+/, '$1'));
  return { time: Number.isNaN(ms) ? undefined : new Date(ms).toISOString(), text: line.slice(m[0].length) };
}

/** Groups error lines by type, most frequent first. */
export function groupErrors(logs: Array<{ pod: string; text: string }>, pattern: RegExp | null): { groups: ErrorGroup[]; lines: number; errorLines: number } {
  const byType = new Map<string, ErrorGroup & { podSet: Set<string> }>();
  let lines = 0;
  let errorLines = 0;
  for (const { pod, text } of logs) {
    for (const raw of text.split('\n')) {
      if (!raw) continue;
      lines++;
      const { time, text: line } = splitTimestamp(raw);
      const type = errorTypeOf(line, pattern);
      if (type === null) continue;
      errorLines++;
      let g = byType.get(type);
      if (!g) {
        g = { type, count: 0, pods: [], podSet: new Set(), sample: line.length > 200 ? `${line.slice(0, 200)}…` : line };
        byType.set(type, g);
      }
      g.count++;
      g.podSet.add(pod);
      if (time) {
        if (!g.firstSeen || time < g.firstSeen) g.firstSeen = time;
        if (!g.lastSeen || time > g.lastSeen) g.lastSeen = time;
      }
    }
  }
  const groups = [...byType.values()]
    .map(({ podSet, ...g }) => ({ ...g, pods: [...podSet].sort() }))
    .sort((a, b) => b.count - a.count || byText(a.type, b.type));
  return { groups, lines, errorLines };
}

// --- access logs ---

/** `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"` */
const COMBINED = /^\S+ \S+ \S+ \[([^\]]+)\] "([A-Z]+) (\S+)[^"]*" (\d{3}) /;
const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };

/** `10/Oct/2000:13:55:36 -0700` → epoch ms, or NaN. */
export function parseNginxTime(s: string): number {
  const m = /^(\d\d)\/(\w{3})\/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$/.exec(s);
  if (!m || !(m[2] in MONTHS)) return NaN;
  const utc = Date.UTC(Number(m[3]), MONTHS[m[2]], Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  const offset = (Number(m[8]) * 60 + Number(m[9])) * 60_000 * (m[7] === '+' ? 1 : -1);
  return utc - offset;
}

/** Collapses ids in a path so `/orders/123` and `/orders/456` count as one endpoint; drops the query. */
const ID_SEGMENT = /\/(?:\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,})(?=\/|$)/gi;

export function endpointPath(target: string): string {
  const q = target.indexOf('?');
  const path = (q >= 0 ? target.slice(0, q) : target) || '/';
  return path.replace(ID_SEGMENT, '/:id');
}

/** Requests per endpoint and status class. */
export interface EndpointStats {
  endpoint: string;
  total: number;
  '2xx': number;
  '3xx': number;
  '4xx': number;
  '5xx': number;
  /** Counts per exact status code. */
  statuses: Record<string, number>;
}

export interface AccessLogSummary {
  files: Array<{ path: string; lines: number; error?: string }>;
  requests: number;
  errors5xx: number;
  unparsed: number;
  endpoints: EndpointStats[];
}

/** Streams each file line by line (memory stays flat on big logs); only requests since `sinceMs` count. */
export async function summarizeAccessLogs(paths: string[], sinceMs: number, signal?: AbortSignal): Promise<AccessLogSummary> {
  const by = new Map<string, EndpointStats>();
  const out: AccessLogSummary = { files: [], requests: 0, errors5xx: 0, unparsed: 0, endpoints: [] };
  let lastStamp = '';
  let lastTime = NaN;
  for (const path of paths) {
    const file: AccessLogSummary['files'][number] = { path, lines: 0 };
    out.files.push(file);
    try {
      const input = createReadStream(path, { encoding: 'utf8', signal });
      const rl = createInterface({ input, crlfDelay: Infinity });
      for await (const line of rl) {
        if (!line) continue;
        file.lines++;
        const m = COMBINED.exec(line);
        if (!m) {
          out.unparsed++;
          continue;
        }
        // Lines of the same second share the timestamp text: parse it once.
        if (m[1] !== lastStamp) {
          lastStamp = m[1];
          lastTime = parseNginxTime(m[1]);
        }
        if (!Number.isNaN(lastTime) && lastTime < sinceMs) continue;
        const endpoint = `${m[2]} ${endpointPath(m[3])}`;
        let e = by.get(endpoint);
        if (!e) {
          e = { endpoint, total: 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, statuses: {} };
          by.set(endpoint, e);
        }
        e.total++;
        out.requests++;
        const cls = `${m[4][0]}xx`;
        if (cls === '2xx' || cls === '3xx' || cls === '4xx' || cls === '5xx') e[cls]++;
        if (cls === '5xx') out.errors5xx++;
        e.statuses[m[4]] = (e.statuses[m[4]] ?? 0) + 1;
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const code = (err as NodeJS.ErrnoException).code;
      file.error = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    }
  }
  out.endpoints = [...by.values()].sort((a, b) => b['5xx'] - a['5xx'] || b.total - a.total || byText(a.endpoint, b.endpoint));
  return out;
}

// --- metrics ---

/** Numeric fields whose name mentions errors, flattened to dot paths (nested objects, 4 levels). */
export function errorFields(doc: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (v: unknown, path: string, depth: number) => {
    if (depth > 4 || v === null || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const p = path ? `${path}.${k}` : k;
      if (typeof x === 'number' && /err|fail|5xx/i.test(p)) out[p] = x;
      else if (typeof x === 'object') walk(x, p, depth + 1);
    }
  };
  walk(doc, '', 0);
  return out;
}

/** The error rate: the configured dot path, else the first field named like error_rate / errorRate. */
export function pickErrorRate(doc: unknown, field?: string): { field: string; value: number } | null {
  if (field) {
    let v: unknown = doc;
    for (const k of field.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    return typeof v === 'number' ? { field, value: v } : null;
  }
  const fields = errorFields(doc);
  const name = Object.keys(fields).find((p) => /(^|\.)(error_?rate|errorRate|error-rate)$/i.test(p));
  return name ? { field: name, value: fields[name] } : null;
}

/** `--max-error-rate`: a fraction (0.05) or a percentage (5%), returned as a fraction. */
export function parseRate(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(raw.trim());
  if (!m) throw new UsageError(`--max-error-rate must be a fraction such as 0.05 or a percentage such as 5%, got "${raw}"`);
  const n = m[2] ? Number(m[1]) / 100 : Number(m[1]);
  if (n > 1) throw new UsageError(`--max-error-rate ${raw} is above 100%`, 'give a fraction (0.05) or a percentage (5%)');
  return n;
}

/** The metric as a fraction, in the unit the config says the endpoint uses. */
export function asFraction(value: number, unit: 'fraction' | 'percent'): number {
  return unit === 'percent' ? value / 100 : value;
}
