import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import type { ChangeBatch } from '../../clients/route53.js';
import type { ResolvedEnvironment } from '../../core/config.js';
import { UsageError } from '../../core/errors.js';

const RR_TYPES = ['A', 'AAAA', 'CAA', 'CNAME', 'DS', 'HTTPS', 'MX', 'NAPTR', 'NS', 'PTR', 'SOA', 'SPF', 'SRV', 'SSHFP', 'SVCB', 'TLSA', 'TXT'] as const;

const recordSet = z
  .strictObject({
    Name: z.string().min(1).max(1024),
    Type: z.enum(RR_TYPES),
    SetIdentifier: z.string().min(1).max(128).optional(),
    TTL: z.number().int().min(0).max(2_147_483_647).optional(),
    ResourceRecords: z
      .array(z.strictObject({ Value: z.string().min(1).max(4000) }))
      .min(1)
      .optional(),
    AliasTarget: z.strictObject({ HostedZoneId: z.string().min(1), DNSName: z.string().min(1), EvaluateTargetHealth: z.boolean() }).optional(),
    Weight: z.number().int().min(0).max(255).optional(),
    Region: z.string().min(1).optional(),
    Failover: z.enum(['PRIMARY', 'SECONDARY']).optional(),
    HealthCheckId: z.string().min(1).optional(),
  })
  .superRefine((r, ctx) => {
    if (r.AliasTarget && (r.ResourceRecords || r.TTL !== undefined))
      ctx.addIssue({ code: 'custom', message: 'an alias record has AliasTarget and no ResourceRecords or TTL' });
    if (!r.AliasTarget && !r.ResourceRecords) ctx.addIssue({ code: 'custom', message: 'needs ResourceRecords (with a TTL) or an AliasTarget' });
    if (r.ResourceRecords && r.TTL === undefined) ctx.addIssue({ code: 'custom', message: 'ResourceRecords need a TTL' });
    const routed = r.Weight !== undefined || r.Region !== undefined || r.Failover !== undefined;
    if (routed && !r.SetIdentifier) ctx.addIssue({ code: 'custom', message: 'weighted, latency and failover records need a SetIdentifier' });
  });

/** The shape `aws route53 change-resource-record-sets --change-batch` takes. */
export const changeBatchSchema = z.strictObject({
  Comment: z.string().max(256).optional(),
  Changes: z
    .array(z.strictObject({ Action: z.enum(['CREATE', 'DELETE', 'UPSERT']), ResourceRecordSet: recordSet }))
    .min(1)
    .max(1000)
    .superRefine((changes, ctx) => {
      const seen = new Set<string>();
      for (const c of changes) {
        const r = c.ResourceRecordSet;
        const key = `${r.Name.toLowerCase().replace(/\.$/, '')} ${r.Type} ${r.SetIdentifier ?? ''}`;
        if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `record ${key.trim()} appears twice` });
        seen.add(key);
      }
    }),
});

/**
 * Reads (file path relative to the config file, or inline) and validates a change batch. Runs in
 * `validate()`, so a malformed batch is exit 2 before anything is contacted.
 */
export function loadChangeBatch(env: ResolvedEnvironment, which: 'failover' | 'failback'): { batch: ChangeBatch; source: string } {
  const field = `environments.${env.name}.dr.route53.${which}`;
  const raw = env.config.dr?.route53[which];
  if (raw === undefined) throw new UsageError(`${field} is not configured`, `add the change batch that points DNS back (a JSON file or inline) as ${field}`);
  let value: unknown = raw;
  let source = 'inline';
  if (typeof raw === 'string') {
    const file = resolve(env.configPath ? dirname(env.configPath) : process.cwd(), raw);
    source = file;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`${field}: ${file} is not valid JSON: ${(err as Error).message}`);
    }
  }
  // `aws route53 … --change-batch file://x.json` files sometimes wrap the batch as {"ChangeBatch": {…}}.
  if (value && typeof value === 'object' && 'ChangeBatch' in value && Object.keys(value).length <= 2) value = (value as { ChangeBatch: unknown }).ChangeBatch;
  const parsed = changeBatchSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `malformed change batch (${source === 'inline' ? field : source}): ${issue.path.join('.') || '(top level)'}: ${issue.message}`,
      'see https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html',
    );
  }
  return { batch: parsed.data as ChangeBatch, source };
}
