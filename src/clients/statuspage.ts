import { parseDuration } from '../core/duration.js';
import { StepError } from '../core/errors.js';
import type { HttpClient } from './http.js';

/** The part of a Statuspage incident the procedures keep (and journal). */
export interface IncidentRef {
  id: string;
  name: string;
  status: string;
  shortlink?: string;
}

/** Which page (its API base, e.g. https://api.statuspage.io/v1/pages/PAGE_ID), with which (resolved) API key. */
export interface StatuspageTarget {
  url: string;
  token: string;
  /** Per request, a duration such as "10s". */
  timeout: string;
}

async function call(http: HttpClient, t: StatuspageTarget, method: string, path: string, body: unknown, signal: AbortSignal | undefined): Promise<IncidentRef> {
  const url = `${t.url.replace(/\/+$/, '')}${path}`;
  const headers = { authorization: `OAuth ${t.token}`, 'content-type': 'application/json', accept: 'application/json' };
  const res = await http.request(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    timeoutMs: parseDuration(t.timeout),
    signal,
  });
  if (res.status < 200 || res.status > 299) {
    const hint =
      res.status === 401 || res.status === 403
        ? 'check the statuspage.token (an API key with write access to this page)'
        : res.status === 404
          ? `check statuspage.url (the page's API base) and the incident id`
          : undefined;
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

/** The Statuspage incident calls of the procedures for the environment's page (`ctx.clients.statuspage()`). */
export function statuspageApi(http: HttpClient, target: StatuspageTarget) {
  return {
    /** Opens an incident (status investigating) with its first update. */
    createIncident: (name: string, body: string, signal?: AbortSignal): Promise<IncidentRef> =>
      call(http, target, 'POST', '/incidents', { incident: { name, status: 'investigating', body } }, signal),
    getIncident: (id: string, signal?: AbortSignal): Promise<IncidentRef> =>
      call(http, target, 'GET', `/incidents/${encodeURIComponent(id)}`, undefined, signal),
    /** Posts an update that also sets the incident's status. */
    updateIncident: (id: string, status: string, body: string, signal?: AbortSignal): Promise<IncidentRef> =>
      call(http, target, 'PATCH', `/incidents/${encodeURIComponent(id)}`, { incident: { status, body } }, signal),
  };
}
export type StatuspageApi = ReturnType<typeof statuspageApi>;
