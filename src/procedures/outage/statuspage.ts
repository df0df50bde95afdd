import { StepError } from '../../core/errors.js';
import { parseDuration } from '../../core/duration.js';
import type { StepContext } from '../../core/procedure.js';
import { journalDir, listRuns, readRun } from '../../core/journal.js';

/** The part of a Statuspage incident the procedures keep (and journal). */
export interface IncidentRef {
  id: string;
  name: string;
  status: string;
  shortlink?: string;
}

type Ctx = Pick<StepContext<unknown>, 'env' | 'clients' | 'signal'>;

function api(ctx: Ctx): { base: string; headers: Record<string, string>; timeoutMs: number } {
  const sp = ctx.env.config.statuspage!;
  const token = ctx.clients.secret(sp.token, `environments.${ctx.env.name}.statuspage.token`);
  return {
    base: sp.url.replace(/\/+$/, ''),
    headers: { authorization: `OAuth ${token}`, 'content-type': 'application/json', accept: 'application/json' },
    timeoutMs: parseDuration(sp.timeout),
  };
}

async function call(ctx: Ctx, method: string, path: string, body?: unknown): Promise<IncidentRef> {
  const a = api(ctx);
  const url = `${a.base}${path}`;
  const res = await ctx.clients.http.request(url, { method, headers: a.headers, body: body === undefined ? undefined : JSON.stringify(body), timeoutMs: a.timeoutMs, signal: ctx.signal });
  if (res.status < 200 || res.status > 299) {
    const hint = res.status === 401 || res.status === 403 ? 'check the statuspage.token (an API key with write access to this page)' : res.status === 404 ? `check statuspage.url (the page's API base) and the incident id` : undefined;
    throw new StepError(`status page ${method} ${path}: HTTP ${res.status}${res.text ? ` ${res.text.slice(0, 120)}` : ''}`, hint);
  }
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(res.text) as Record<string, unknown>;
  } catch {
    throw new StepError(`status page ${method} ${path}: the answer is not JSON`);
  }
  if (typeof o.id !== 'string') throw new StepError(`status page ${method} ${path}: the answer has no incident id`);
  return { id: o.id, name: String(o.name ?? ''), status: String(o.status ?? ''), shortlink: typeof o.shortlink === 'string' ? o.shortlink : undefined };
}

export function createIncident(ctx: Ctx, name: string, body: string): Promise<IncidentRef> {
  return call(ctx, 'POST', '/incidents', { incident: { name, status: 'investigating', body } });
}

export function getIncident(ctx: Ctx, id: string): Promise<IncidentRef> {
  return call(ctx, 'GET', `/incidents/${encodeURIComponent(id)}`);
}

export function updateIncident(ctx: Ctx, id: string, status: string, body: string): Promise<IncidentRef> {
  return call(ctx, 'PATCH', `/incidents/${encodeURIComponent(id)}`, { incident: { status, body } });
}

export function curlIncident(env: StepContext<unknown>['env'], method: string, path: string, json?: unknown): string {
  const base = env.config.statuspage?.url ?? 'https://api.statuspage.io/v1/pages/PAGE_ID';
  return `curl -fsS -X ${method} ${base.replace(/\/+$/, '')}${path} -H "Authorization: OAuth $STATUSPAGE_TOKEN"${json === undefined ? '' : ` -H 'Content-Type: application/json' -d '${JSON.stringify(json)}'`}`;
}

/** The incident the most recent real `outage start` in this environment opened (and did not take back), from the journal. */
export async function incidentFromJournal(ctx: Pick<StepContext<unknown>, 'env' | 'io'>): Promise<{ runId: string; incident: IncidentRef } | null> {
  const dir = journalDir(ctx.io.env, ctx.env.journalDir);
  const runs = (await listRuns(dir)).filter((r) => r.procedure === 'outage start' && r.environment === ctx.env.name && r.dryRun === 'off').reverse();
  for (const run of runs) {
    const events = await readRun(dir, run.runId);
    const created = events.find((e) => e.type === 'step-end' && e.step === 'incident' && e.status === 'succeeded');
    if (!created) continue;
    const undone = events.some((e) => e.type === 'compensation' && e.step === 'incident' && e.status === 'succeeded');
    if (undone) return null;
    const data = created.data as IncidentRef | undefined;
    if (data && typeof data.id === 'string') return { runId: run.runId, incident: data };
  }
  return null;
}
