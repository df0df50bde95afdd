import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { V1EnvVar } from '@kubernetes/client-node';
import type { ResolvedEnvironment } from '../../core/config.js';
import { wafRuleSchema, formatIssues } from '../../core/config-schema.js';
import { StepError, UsageError } from '../../core/errors.js';
import type { JournalReader, JournalRun } from '../../core/journal-reader.js';
import type { Step, StepContext, StepRef } from '../../core/procedure.js';
import type { WafRule, WebAclRef } from '../../clients/wafv2.js';
import { securityLevelUrl } from '../../clients/cloudflare.js';
import type { EnvChange } from '../shared/env-vars.js';
import { deploymentName, ns } from '../shared/pods.js';

export type DdosConfig = NonNullable<ResolvedEnvironment['config']['ddos']>;
type Cloudflare = NonNullable<ResolvedEnvironment['config']['cloudflare']>;

/**
 * Which way a mitigation step goes: on (`security ddos`), or back (`security ddos-revert`), where it
 * puts back what the revert's `recorded` step found in the journal.
 */
export type Direction = { revert: false } | { revert: true; recorded: StepRef<DdosRecord | null> };

/** The variables the application reads to turn its own rate limiting on. */
export function rateLimitVars(env: ResolvedEnvironment): Record<string, string> {
  const r = env.config.ddos?.rateLimit ?? { requests: 10, window: 60 };
  return { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_REQUESTS: String(r.requests), RATE_LIMIT_WINDOW: String(r.window) };
}

/** The emergency rules: inline, or a JSON file (relative to the config file), validated before anything is contacted. */
export function emergencyRules(env: ResolvedEnvironment): WafRule[] {
  const waf = env.config.ddos?.waf;
  if (!waf) return [];
  let raw: unknown = waf.rules;
  const where = `environments.${env.name}.ddos.waf.rules`;
  if (typeof waf.rules === 'string') {
    const file = resolve(env.configPath ? dirname(env.configPath) : process.cwd(), waf.rules);
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new UsageError(`${where}: cannot read ${file} as JSON: ${(err as Error).message.split('\n')[0]}`, 'the file must hold a JSON array of WAFv2 rules');
    }
  }
  const parsed = wafRuleSchema.array().min(1).safeParse(raw);
  if (!parsed.success) throw new UsageError(`${where}: ${formatIssues(parsed.error)}`, 'each rule needs Name, Priority, Statement and VisibilityConfig');
  const names = new Set<string>();
  for (const r of parsed.data) {
    if (names.has(r.Name)) throw new UsageError(`${where}: rule name ${r.Name} appears twice`);
    names.add(r.Name);
  }
  return parsed.data as WafRule[];
}

export function wafRef(env: ResolvedEnvironment): WebAclRef & { region: string } {
  const w = env.config.ddos!.waf!;
  return { scope: w.scope, name: w.name, id: w.id, region: w.region ?? (w.scope === 'CLOUDFRONT' ? 'us-east-1' : (env.config.aws?.region ?? 'us-east-1')) };
}

/** Emergency rules replace same-named rules and are added otherwise; every other rule is kept as it is. */
export function mergeRules(current: WafRule[], emergency: WafRule[]): WafRule[] {
  const names = new Set(emergency.map((r) => r.Name));
  const kept = current.filter((r) => !names.has(r.Name));
  for (const e of emergency) {
    const clash = kept.find((k) => k.Priority === e.Priority);
    if (clash)
      throw new StepError(
        `emergency rule ${e.Name} has priority ${e.Priority}, already used by rule ${clash.Name} of the web ACL`,
        'give the emergency rule a free priority in ddos.waf.rules',
      );
  }
  return [...kept, ...emergency].sort((a, b) => a.Priority - b.Priority);
}

/** The inverse of mergeRules: drop the emergency names, put back the same-named rules that were there before. */
export function unmergeRules(current: WafRule[], names: string[], previous: WafRule[]): WafRule[] {
  const set = new Set(names);
  return [...current.filter((r) => !set.has(r.Name)), ...previous.filter((r) => set.has(r.Name))].sort((a, b) => a.Priority - b.Priority);
}

const sameRules = (a: WafRule[], b: WafRule[]) => JSON.stringify(a) === JSON.stringify(b);
const ruleNames = (rules: WafRule[]) => rules.map((r) => r.Name).join(', ') || '(none)';

function wafCli(env: ResolvedEnvironment, file: string): string {
  const r = wafRef(env);
  return `aws wafv2 get-web-acl --scope ${r.scope} --name ${r.name} --id ${r.id} --region ${r.region} --query LockToken --output text  # then: aws wafv2 update-web-acl --scope ${r.scope} --name ${r.name} --id ${r.id} --region ${r.region} --lock-token <token> --default-action <unchanged> --visibility-config <unchanged> --rules file://${file}`;
}

/** WAFv2 in the web ACL's region (CLOUDFRONT-scoped ACLs live in us-east-1). */
const waf = <P>(ctx: Pick<StepContext<P>, 'clients' | 'env'>) => ctx.clients.waf(wafRef(ctx.env).region);

/** What the WAF step did: the whole rule list before, and the names it merged. */
export interface WafData {
  previous: WafRule[];
  names: string[];
  retried: boolean;
}

/** Step `waf`: merge (or, for the revert, unmerge) the emergency rules, lock token read right before each update. */
export function wafStep<P>(opts: Direction): Step<P, WafData> {
  const desired = (ctx: StepContext<P>, current: WafRule[]): WafRule[] => {
    if (!opts.revert) return mergeRules(current, emergencyRules(ctx.env));
    const rec = ctx.get(opts.recorded);
    return unmergeRules(current, rec?.waf?.names ?? emergencyRules(ctx.env).map((r) => r.Name), rec?.waf?.previous ?? []);
  };
  return {
    id: 'waf',
    title: opts.revert ? 'Take the emergency WAF rules out again' : 'Merge the emergency rules into the web ACL',
    why: opts.revert
      ? 'Removes only the rules the ddos run added, putting back any same-named rules they replaced; other rules are left as they are.'
      : 'Blocks attack traffic at the edge. The rules are merged by name into the existing ones (the seed replaced them all) with a lock token read just before the update (the seed hard-coded it).',
    risk: 'write',
    when: (_p, env) => !!env.config.ddos?.waf,
    equivalent: (_p, env) => wafCli(env, opts.revert ? 'previous-rules.json' : 'merged-rules.json'),
    async plan(ctx) {
      const cur = await (await waf(ctx)).getWebAcl(wafRef(ctx.env));
      const next = desired(ctx, cur.rules);
      if (sameRules(cur.rules, next)) return [];
      return [
        { action: 'set rules of', target: `web ACL ${wafRef(ctx.env).name} (${wafRef(ctx.env).scope})`, before: ruleNames(cur.rules), after: ruleNames(next) },
      ];
    },
    async run(ctx): Promise<WafData> {
      const r = await (await waf(ctx)).updateWebAclRules(wafRef(ctx.env), (cur) => desired(ctx, cur));
      if (r.retried) ctx.log('the web ACL changed under us (WAFOptimisticLockException): re-read it and retried once');
      const names = opts.revert ? [] : emergencyRules(ctx.env).map((x) => x.Name);
      return { previous: r.before, names, retried: r.retried };
    },
    async undo(ctx, data) {
      await (await waf(ctx)).updateWebAclRules(wafRef(ctx.env), () => data.previous);
    },
    undoByHand: (ctx, data) => `${wafCli(ctx.env, 'previous-rules.json')}  # previous rules: ${JSON.stringify(data.previous)}`,
    postcondition: {
      describe: opts.revert ? 'the web ACL holds none of the emergency rules' : 'the web ACL holds the emergency rules',
      // Merging (or taking out) again works from the rules there now, lock token read again, and records
      // those as the ones to put back: safe.
      async check(ctx) {
        const cur = await (await waf(ctx)).getWebAcl(wafRef(ctx.env));
        const next = desired(ctx, cur.rules);
        return sameRules(cur.rules, next)
          ? { holds: true }
          : { holds: false, found: `web ACL ${wafRef(ctx.env).name} has rules ${ruleNames(cur.rules)}, ${opts.revert ? 'not' : 'not yet'} ${ruleNames(next)}` };
      },
    },
  };
}

/** What the shield step replaced: the DRT role associated before (null: none). */
export interface ShieldData {
  previous: string | null;
}

/** Step `shield`: authorise the Shield Response Team's role (skipped when ddos.shield is not configured). */
export function shieldStep<P>(): Step<P, ShieldData> {
  const arn = (env: ResolvedEnvironment) => env.config.ddos!.shield!.drtRoleArn;
  return {
    id: 'shield',
    title: 'Give the Shield Response Team access (DRT role)',
    why: 'Lets the AWS Shield Response Team inspect and change WAF rules during the attack; the role that was associated before is recorded so the undo can put it back.',
    risk: 'write',
    when: (_p, env) => !!env.config.ddos?.shield,
    equivalent: (_p, env) => `aws shield associate-drt-role --role-arn ${arn(env)}`,
    async plan(ctx) {
      const cur = await (await ctx.clients.shield()).describeDrtRole();
      if (cur === arn(ctx.env)) return [];
      return [{ action: 'associate DRT role', target: 'Shield Advanced subscription', before: cur ?? '∅', after: arn(ctx.env) }];
    },
    async run(ctx): Promise<ShieldData> {
      const shield = await ctx.clients.shield();
      const previous = await shield.describeDrtRole();
      await shield.setDrtRole(arn(ctx.env));
      return { previous };
    },
    async undo(ctx, data) {
      await (await ctx.clients.shield()).setDrtRole(data.previous);
    },
    undoByHand: (_ctx, data) => {
      const prev = data.previous;
      return prev ? `aws shield associate-drt-role --role-arn ${prev}` : 'aws shield disassociate-drt-role';
    },
    postcondition: {
      describe: 'the DRT role is associated',
      // Associating again records the role there now as the one to put back: safe.
      async check(ctx) {
        const cur = await (await ctx.clients.shield()).describeDrtRole();
        return cur === arn(ctx.env) ? { holds: true } : { holds: false, found: `the DRT role is ${cur ?? 'not associated'}` };
      },
    },
  };
}

/** Rate-limit variables to set (ddos) or to put back (revert: to what the ddos run found, `recorded`). */
export function rateLimitChange(env: ResolvedEnvironment, revert: boolean, recorded?: DdosRecord | null): EnvChange {
  const vars = rateLimitVars(env);
  if (!revert) return { set: Object.entries(vars).map(([key, value]) => ({ key, value })), unset: [] };
  const prev = recorded?.env;
  const change: EnvChange = { set: [], unset: [] };
  for (const key of Object.keys(vars)) {
    const v = prev?.find((e) => e.name === key)?.value;
    if (v === undefined) change.unset.push(key);
    else change.set.push({ key, value: v });
  }
  return change;
}

/** Step `ratelimit`: which variables the `apply` step sets or removes (read-only; needs the environment's config). */
export function rateLimitTargetStep<P>(opts: Direction): Step<P, EnvChange> {
  return {
    id: 'ratelimit',
    title: opts.revert ? 'Work out the rate-limit variables to put back' : 'Work out the rate-limit variables',
    why: 'From ddos.rateLimit (requests per window in seconds); the revert uses the values the ddos run found.',
    risk: 'read',
    equivalent: (_p, env) =>
      `# ${Object.entries(rateLimitVars(env))
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    run: async (ctx): Promise<EnvChange> => rateLimitChange(ctx.env, opts.revert, opts.revert ? ctx.get(opts.recorded) : null),
  };
}

export interface ScaleData {
  from: number;
  to: number;
}

async function currentReplicas<P>(ctx: Pick<StepContext<P>, 'clients' | 'env'>): Promise<number> {
  const kube = await ctx.clients.kube();
  return (await kube.getDeployment(deploymentName(ctx.env))).spec?.replicas ?? 0;
}

/**
 * Step `scale`: like `app scale`, but only ever up (ddos, to `replicas` of the params or else
 * ddos.replicas), or back to the recorded count (revert).
 */
export function scaleStep<P>(opts: Direction & { replicas?: (p: P) => number | undefined }): Step<P, ScaleData | null> {
  const wanted = (p: P, env: ResolvedEnvironment) => opts.replicas?.(p) ?? env.config.ddos?.replicas;
  const target = async (ctx: StepContext<P>): Promise<ScaleData | null> => {
    const from = await currentReplicas(ctx);
    if (opts.revert) {
      const rec = ctx.get(opts.recorded)?.scale;
      if (!rec) return null;
      if (from !== rec.to) {
        ctx.reporter.warn(`deployment has ${from} replicas, not the ${rec.to} the ddos run set: left as it is`);
        return null;
      }
      return from === rec.from ? null : { from, to: rec.from };
    }
    const want = wanted(ctx.params, ctx.env);
    if (want === undefined || from >= want) return null;
    return { from, to: want };
  };
  return {
    id: 'scale',
    title: opts.revert ? 'Scale back to the count found before the ddos run' : 'Scale up to absorb the traffic',
    why: opts.revert
      ? 'Puts back the replica count the ddos run recorded, and only if nobody has changed it since.'
      : 'More replicas absorb the load; the count found is recorded (the seed hard-codes 20), never scales down, and respects limits.maxReplicas.',
    risk: 'write',
    equivalent: (p, env) =>
      `kubectl scale deployment/${deploymentName(env)} --replicas=${opts.revert ? '<recorded count>' : (wanted(p, env) ?? '<n>')} -n ${ns(env)}`,
    async plan(ctx) {
      const t = await target(ctx);
      if (!t) return [];
      const kube = await ctx.clients.kube();
      await kube.scaleDeployment(deploymentName(ctx.env), t.to, { dryRun: true });
      return [{ action: 'scale', target: `deployment/${deploymentName(ctx.env)}`, before: String(t.from), after: String(t.to), validated: true }];
    },
    async run(ctx): Promise<ScaleData | null> {
      const t = await target(ctx);
      if (!t) return null;
      const kube = await ctx.clients.kube();
      await kube.scaleDeployment(deploymentName(ctx.env), t.to);
      return t;
    },
    async undo(ctx, data) {
      if (!data) return;
      const kube = await ctx.clients.kube();
      await kube.scaleDeployment(deploymentName(ctx.env), data.from);
    },
    undoByHand: (ctx, data) => (data ? `kubectl scale deployment/${deploymentName(ctx.env)} --replicas=${data.from} -n ${ns(ctx.env)}` : 'nothing to undo'),
    postcondition: {
      describe: opts.revert ? 'the deployment is at the count put back' : 'the deployment has at least the replicas asked for',
      // Scaling again works from the count there now (never down for ddos; back only if still at the ddos
      // count for the revert) and records it: safe.
      async check(ctx, data) {
        const live = await currentReplicas(ctx);
        if (opts.revert)
          return !data || live === data.to
            ? { holds: true }
            : { holds: false, found: `deployment/${deploymentName(ctx.env)} has ${live} replica(s), not ${data.to}` };
        const want = wanted(ctx.params, ctx.env);
        return want === undefined || live >= want
          ? { holds: true }
          : { holds: false, found: `deployment/${deploymentName(ctx.env)} has ${live} replica(s), fewer than ${want}` };
      },
    },
  };
}

function cf(env: ResolvedEnvironment): Cloudflare {
  return env.config.cloudflare!;
}
const levelUrl = (env: ResolvedEnvironment) => securityLevelUrl(cf(env).api, cf(env).zoneId);

/** What the cloudflare step changed: the zone's security level before and after. */
export interface LevelChange {
  from: string;
  to: string;
}

const curlLevel = (env: ResolvedEnvironment, value: string) =>
  `curl -X PATCH "${levelUrl(env)}" -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN" -H "Content-Type: application/json" --data '{"value":"${value}"}'`;

/** Step `cloudflare`: security level to under_attack (ddos) or back to what was recorded (revert). */
export function cloudflareStep<P>(opts: Direction): Step<P, LevelChange | null> {
  const target = async (ctx: StepContext<P>): Promise<LevelChange | null> => {
    const from = await (await ctx.clients.cloudflare()).getSecurityLevel(ctx.signal);
    if (!opts.revert) return from === 'under_attack' ? null : { from, to: 'under_attack' };
    const rec = ctx.get(opts.recorded)?.cloudflare;
    const to = rec?.from ?? 'medium';
    return from !== 'under_attack' || from === to ? null : { from, to };
  };
  return {
    id: 'cloudflare',
    title: opts.revert ? 'Put the Cloudflare security level back' : 'Cloudflare "I\'m Under Attack" mode on',
    why: opts.revert
      ? 'Returns the zone to the level found before the ddos run (medium when none was recorded), only if it is still under_attack.'
      : 'Challenges every visitor at the edge. The level found is read first so it can be put back (the seed could not), with an API token (the seed used the global key).',
    risk: 'write',
    when: (_p, env) => !!env.config.cloudflare,
    secrets: ['cloudflare'],
    equivalent: (_p, env) => curlLevel(env, opts.revert ? '<previous level>' : 'under_attack'),
    async plan(ctx) {
      const t = await target(ctx);
      return t ? [{ action: 'set security_level of', target: `Cloudflare zone ${cf(ctx.env).zoneId}`, before: t.from, after: t.to }] : [];
    },
    async run(ctx): Promise<LevelChange | null> {
      const t = await target(ctx);
      if (!t) return null;
      await (await ctx.clients.cloudflare()).setSecurityLevel(t.to, ctx.signal);
      return t;
    },
    async undo(ctx, data) {
      if (data) await (await ctx.clients.cloudflare()).setSecurityLevel(data.from, ctx.signal);
    },
    undoByHand: (ctx, data) => (data ? curlLevel(ctx.env, data.from) : 'nothing to undo'),
    postcondition: {
      describe: opts.revert ? 'the zone is no longer under_attack' : 'the zone is under_attack',
      // Setting the level again reads the level there now first (and records it): safe.
      async check(ctx) {
        const level = await (await ctx.clients.cloudflare()).getSecurityLevel(ctx.signal);
        return (level === 'under_attack') !== opts.revert ? { holds: true } : { holds: false, found: `Cloudflare zone ${cf(ctx.env).zoneId} is at ${level}` };
      },
    },
  };
}

/** What the newest uncompensated `security ddos` run changed, from the journal. */
export interface DdosRecord {
  fromRun: string;
  waf?: WafData;
  env?: V1EnvVar[] | null;
  scale?: ScaleData;
  cloudflare?: LevelChange;
}

const SCAN_LIMIT = 500;

export async function findLastDdos(journal: JournalReader, environment: string): Promise<DdosRecord | null> {
  // The ddos run's own steps, as handles on what each journaled (typed by the step).
  const waf = wafStep<never>({ revert: false });
  const scale = scaleStep<never>({ revert: false });
  const cloudflare = cloudflareStep<never>({ revert: false });
  const envApplied = (v: unknown): v is { previous: V1EnvVar[] | null } =>
    typeof v === 'object' && v !== null && 'previous' in v && (v.previous === null || Array.isArray(v.previous));
  const recordOf = (run: JournalRun): DdosRecord => {
    const rec: DdosRecord = { fromRun: run.runId };
    const w = run.effect(waf);
    if (w) rec.waf = w;
    const e = run.effect('apply');
    if (e && envApplied(e)) rec.env = e.previous;
    const sc = run.effect(scale);
    if (sc) rec.scale = sc;
    const c = run.effect(cloudflare);
    if (c) rec.cloudflare = c;
    return rec;
  };
  const run = await journal.lastEffective('security ddos', {
    env: environment,
    steps: [waf, 'apply', scale, cloudflare],
    // A revert that finished since then means there is nothing left to put back (a declined or failed
    // one, put back itself, leaves the mitigation in place and its record needed).
    closedBy: { procedure: 'security ddos-revert', where: (r) => r.exitCode === 0 },
    where: (r) => {
      const rec = recordOf(r);
      return Boolean(rec.waf || rec.env !== undefined || rec.scale || rec.cloudflare);
    },
    scan: SCAN_LIMIT,
  });
  return run ? recordOf(run) : null;
}

/** Step `recorded` of the revert: find what the last ddos run replaced. */
export function recordedStep<P>(): Step<P, DdosRecord | null> {
  return {
    id: 'recorded',
    title: 'Find what the last ddos run changed (journal)',
    why: 'The revert puts back exactly the values the ddos run found, which it recorded in the journal.',
    risk: 'read',
    equivalent: () => 'runbook history --procedure "security ddos" --limit 1',
    async run(ctx): Promise<DdosRecord | null> {
      const rec = await findLastDdos(ctx.journal, ctx.env.name);
      if (rec) ctx.log(`putting back what run ${rec.fromRun} replaced`);
      else ctx.log('no earlier ddos run in the journal: emergency rules removed by name, rate-limit variables removed, Cloudflare back to medium');
      return rec;
    },
  };
}

/** Cross-field checks shared by both procedures: the section exists, the rules parse. */
export function validateDdos(env: ResolvedEnvironment, replicas?: number): void {
  if (!env.config.ddos)
    throw new UsageError(`environment "${env.name}" has no ddos section`, 'add environments.<name>.ddos (waf, shield, rateLimit, replicas)');
  if (env.config.ddos.waf && !env.config.aws) throw new UsageError(`environment "${env.name}" has ddos.waf but no aws section`);
  if (env.config.ddos.shield && !env.config.aws) throw new UsageError(`environment "${env.name}" has ddos.shield but no aws section`);
  emergencyRules(env);
  const max = env.config.limits.maxReplicas;
  const want = replicas ?? env.config.ddos.replicas;
  if (want !== undefined && want > max)
    throw new UsageError(
      `${replicas !== undefined ? '--replicas' : 'ddos.replicas'} ${want} is above this environment's limit of ${max}`,
      `raise environments.${env.name}.limits.maxReplicas if that is really intended`,
    );
}
