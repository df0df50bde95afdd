import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHttpService, type HttpService } from '../services/index.js';
import type { SandboxContext, SandboxPart } from './types.js';

/** A Statuspage incident as the fake page stores it. */
export interface FakeIncident {
  id: string;
  name: string;
  status: string;
  shortlink: string;
  created_at: string;
  updated_at: string;
  incident_updates: Array<{ status: string; body: string; created_at: string }>;
}

export const STATUSPAGE_TOKEN = 'sp-sandbox-token-5c1e';
const PAGE = 'sandboxpage1';
const STATUSES = new Set(['investigating', 'identified', 'monitoring', 'resolved', 'scheduled', 'in_progress', 'verifying', 'completed', 'postmortem']);

/** The Statuspage REST API for one page: POST/GET/PATCH incidents, `Authorization: OAuth <token>`. */
export async function startStatusPage(token = STATUSPAGE_TOKEN): Promise<{ service: HttpService; incidents: Map<string, FakeIncident>; base: string }> {
  const incidents = new Map<string, FakeIncident>();
  let next = 1;
  const prefix = `/v1/pages/${PAGE}/incidents`;
  const service = await startHttpService((req) => {
    if (req.headers.authorization !== `OAuth ${token}`) return { status: 401, body: { error: 'Could not authenticate' } };
    const now = new Date().toISOString();
    if (req.pathname === prefix && req.method === 'POST') {
      const inc = (req.json as { incident?: { name?: string; status?: string; body?: string } } | undefined)?.incident;
      if (!inc?.name) return { status: 422, body: { error: 'name is missing' } };
      const status = inc.status ?? 'investigating';
      if (!STATUSES.has(status)) return { status: 422, body: { error: `invalid status ${status}` } };
      const id = `inc${String(next++).padStart(9, '0')}`;
      const created: FakeIncident = {
        id,
        name: inc.name,
        status,
        shortlink: `https://stspg.io/${id}`,
        created_at: now,
        updated_at: now,
        incident_updates: [{ status, body: inc.body ?? '', created_at: now }],
      };
      incidents.set(id, created);
      return { status: 201, body: created };
    }
    if (req.pathname === prefix && req.method === 'GET') return { status: 200, body: [...incidents.values()] };
    const m = new RegExp(`^${prefix}/([^/]+)$`).exec(req.pathname);
    if (m) {
      const found = incidents.get(m[1]);
      if (!found) return { status: 404, body: { error: 'Incident not found' } };
      if (req.method === 'GET') return { status: 200, body: found };
      if (req.method === 'PATCH' || req.method === 'PUT') {
        const inc = (req.json as { incident?: { status?: string; body?: string; name?: string } } | undefined)?.incident ?? {};
        if (inc.status && !STATUSES.has(inc.status)) return { status: 422, body: { error: `invalid status ${inc.status}` } };
        if (inc.status) found.status = inc.status;
        if (inc.name) found.name = inc.name;
        found.updated_at = now;
        found.incident_updates.unshift({ status: found.status, body: inc.body ?? '', created_at: now });
        return { status: 200, body: found };
      }
    }
    return { status: 404, body: { error: 'not found' } };
  });
  return { service, incidents, base: `${service.url}/v1/pages/${PAGE}` };
}

/** Writes an nginx "combined" access log: `lines` requests within the last `withinMs`, some failing. */
export function writeAccessLog(path: string, rows: Array<{ method: string; path: string; status: number; agoMs: number }>, now = Date.now()): void {
  const fmt = (t: number) => {
    const d = new Date(t);
    const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()];
    const p = (n: number) => String(n).padStart(2, '0');
    return `${p(d.getUTCDate())}/${mon}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
  };
  const text =
    rows
      .map((r, i) => `10.0.0.${(i % 250) + 1} - - [${fmt(now - r.agoMs)}] "${r.method} ${r.path} HTTP/1.1" ${r.status} ${512 + i} "-" "curl/8.5.0"`)
      .join('\n') + '\n';
  writeFileSync(path, text);
}

/** The sandbox's default access log: checkout failing, the rest fine, some requests older than an hour. */
export function defaultAccessRows(): Array<{ method: string; path: string; status: number; agoMs: number }> {
  const rows: Array<{ method: string; path: string; status: number; agoMs: number }> = [];
  for (let i = 0; i < 40; i++)
    rows.push({ method: 'GET', path: `/api/orders/${1000 + i}?expand=items`, status: i % 20 === 0 ? 404 : 200, agoMs: 30 * 60_000 - i * 1000 });
  for (let i = 0; i < 20; i++)
    rows.push({ method: 'POST', path: '/api/checkout', status: i % 4 === 0 ? 200 : i % 2 ? 502 : 500, agoMs: 20 * 60_000 - i * 1000 });
  for (let i = 0; i < 10; i++) rows.push({ method: 'GET', path: '/health', status: 200, agoMs: 5 * 60_000 - i * 1000 });
  // Outside a one-hour window.
  for (let i = 0; i < 5; i++) rows.push({ method: 'POST', path: '/api/login', status: 500, agoMs: 3 * 3_600_000 });
  return rows;
}

/**
 * Incident and outage services: a Statuspage API (fingerprinted: the incidents still open), a metrics
 * endpoint, dependency health URLs and an nginx access log.
 */
export async function startIncidentPart(ctx: SandboxContext): Promise<SandboxPart> {
  const page = await startStatusPage();
  const metricsDoc = { window: '5m', requests: 1200, errors: 42, error_rate: 0.035, latency_p99_ms: 840, by_status: { '5xx': 40, '4xx': 2 } };
  const metrics = await startHttpService((req) =>
    req.pathname === '/api/errors' ? { status: 200, body: metricsDoc } : { status: 404, body: { error: 'not found' } },
  );
  const deps = await startHttpService((req) => {
    const m = /^\/(payment-gateway|auth-service|cdn)\/health$/.exec(req.pathname);
    return m ? { status: 200, body: { status: 'ok', service: m[1] } } : { status: 404, body: { error: 'not found' } };
  });
  const accessLog = join(ctx.dir, 'access.log');
  writeAccessLog(accessLog, defaultAccessRows());
  return {
    name: 'incident',
    environment: {
      metrics: { url: `${metrics.url}/api/errors` },
      accessLogs: { files: [accessLog], format: 'nginx-combined' },
      statuspage: { url: page.base, token: { env: 'STATUSPAGE_TOKEN' } },
      services: ['api'],
      dependencies: ['payment-gateway', 'auth-service', 'cdn'].map((name) => ({ name, url: `${deps.url}/${name}/health`, timeout: '2s' })),
    },
    env: { STATUSPAGE_TOKEN },
    async fingerprint() {
      // What the status page shows as ongoing: an incident opened and resolved again (compensation) is not.
      const open = [...page.incidents.values()].filter((i) => i.status !== 'resolved' && i.status !== 'completed').map((i) => `${i.id}:${i.name}:${i.status}`);
      return JSON.stringify({ open: open.sort() });
    },
    async stop() {
      await Promise.all([page.service.stop(), metrics.stop(), deps.stop()]);
    },
  };
}
