import { bindClient } from './bind.js';
import type { WAFV2Client } from '@aws-sdk/client-wafv2';

/** One WAFv2 rule as the API returns and takes it (the fields runbook looks at are named). */
export interface WafRule {
  Name: string;
  Priority: number;
  [field: string]: unknown;
}

/** Which web ACL: the same three identifiers every WAFv2 call needs. */
export interface WebAclRef {
  scope: 'CLOUDFRONT' | 'REGIONAL';
  name: string;
  id: string;
}

export interface WebAclState {
  rules: WafRule[];
  lockToken: string;
}

/** Strips the nulls some servers send for absent members, so a rule read back can be sent again. */
function clean(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clean);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = clean(v);
    return out;
  }
  return value;
}

export async function getWebAcl(client: WAFV2Client, ref: WebAclRef): Promise<WebAclState & { acl: Record<string, unknown> }> {
  const m = await import('@aws-sdk/client-wafv2');
  const r = await client.send(new m.GetWebACLCommand({ Scope: ref.scope, Name: ref.name, Id: ref.id }));
  const acl = (clean(r.WebACL ?? {}) as Record<string, unknown>) ?? {};
  return { acl, rules: (acl.Rules as WafRule[] | undefined) ?? [], lockToken: r.LockToken ?? '' };
}

export function isLockError(err: unknown): boolean {
  const e = err as { name?: string; Code?: string };
  return e?.name === 'WAFOptimisticLockException' || e?.Code === 'WAFOptimisticLockException';
}

/**
 * Replaces the ACL's rules with `next(current)`: the lock token is read right before the update
 * (never hard-coded), and on WAFOptimisticLockException the ACL is read again, `next` recomputed
 * against the fresh rules, and the update retried once. Everything else on the ACL is sent back as read.
 */
export async function updateWebAclRules(
  client: WAFV2Client,
  ref: WebAclRef,
  next: (current: WafRule[]) => WafRule[],
): Promise<{ before: WafRule[]; after: WafRule[]; retried: boolean }> {
  const m = await import('@aws-sdk/client-wafv2');
  for (let attempt = 0; ; attempt++) {
    const cur = await getWebAcl(client, ref);
    const after = next(cur.rules);
    const a = cur.acl;
    try {
      await client.send(
        new m.UpdateWebACLCommand({
          Scope: ref.scope,
          Name: ref.name,
          Id: ref.id,
          LockToken: cur.lockToken,
          DefaultAction: a.DefaultAction as never,
          VisibilityConfig: a.VisibilityConfig as never,
          Description: (a.Description as string | undefined) || undefined,
          CustomResponseBodies: a.CustomResponseBodies as never,
          CaptchaConfig: a.CaptchaConfig as never,
          ChallengeConfig: a.ChallengeConfig as never,
          TokenDomains: a.TokenDomains as never,
          AssociationConfig: a.AssociationConfig as never,
          Rules: after as never,
        }),
      );
      return { before: cur.rules, after, retried: attempt > 0 };
    } catch (err) {
      if (attempt === 0 && isLockError(err)) continue;
      throw err;
    }
  }
}

/** The WAFv2 calls of the procedures for one region's client (`ctx.clients.waf(region)`). */
export function wafApi(client: WAFV2Client) {
  return bindClient(client, { getWebAcl, updateWebAclRules });
}
export type WafApi = ReturnType<typeof wafApi>;
