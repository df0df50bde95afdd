import { StepError } from '../core/errors.js';
import type { HttpClient } from './http.js';

/** Which zone, through which API base, with which (resolved) API token. */
export interface CloudflareTarget {
  /** The API base, e.g. https://api.cloudflare.com/client/v4. */
  api: string;
  zoneId: string;
  token: string;
}

/** The zone's security_level setting (what `curl -X PATCH` in the equivalent lines targets too). */
export function securityLevelUrl(api: string, zoneId: string): string {
  return `${api.replace(/\/$/, '')}/zones/${encodeURIComponent(zoneId)}/settings/security_level`;
}

async function securityLevelCall(
  http: HttpClient,
  t: CloudflareTarget,
  method: 'GET' | 'PATCH',
  value: string | undefined,
  signal: AbortSignal | undefined,
): Promise<string> {
  const res = await http.request(securityLevelUrl(t.api, t.zoneId), {
    method,
    headers: { Authorization: `Bearer ${t.token}`, 'Content-Type': 'application/json' },
    body: value === undefined ? undefined : JSON.stringify({ value }),
    signal,
  });
  let doc: { success?: boolean; result?: { value?: string }; errors?: Array<{ message?: string }> } = {};
  try {
    doc = JSON.parse(res.text);
  } catch {
    /* reported below */
  }
  if (res.status >= 300 || !doc.success || typeof doc.result?.value !== 'string') {
    const msg = doc.errors?.map((e) => e.message).join('; ') || `HTTP ${res.status}`;
    throw new StepError(`Cloudflare ${method} security_level failed: ${msg}`, 'check cloudflare.zoneId and that the token may edit zone settings');
  }
  return doc.result.value;
}

/** The Cloudflare calls of the procedures for the environment's zone (`ctx.clients.cloudflare()`), with an API token (Authorization: Bearer). */
export function cloudflareApi(http: HttpClient, target: CloudflareTarget) {
  return {
    zoneId: target.zoneId,
    /** The zone's security level now (off, essentially_off, low, medium, high, under_attack). */
    getSecurityLevel: (signal?: AbortSignal): Promise<string> => securityLevelCall(http, target, 'GET', undefined, signal),
    /** Sets the zone's security level; returns the level Cloudflare reports after the change. */
    setSecurityLevel: (value: string, signal?: AbortSignal): Promise<string> => securityLevelCall(http, target, 'PATCH', value, signal),
  };
}
export type CloudflareApi = ReturnType<typeof cloudflareApi>;
