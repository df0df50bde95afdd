import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { V1EnvVar } from '@kubernetes/client-node';
import type { ResolvedEnvironment } from '../../core/config.js';
import { wafRuleSchema, formatIssues } from '../../core/config-schema.js';
import { StepError, UsageError } from '../../core/errors.js';
import { journalDir, readRun } from '../../core/journal.js';
import type { Step, StepContext } from '../../core/procedure.js';
import type { WafRule, WebAclRef } from '../../clients/wafv2.js';
import type { EnvChange } from '../shared/env-vars.js';
import { deploymentName, ns } from '../shared/pods.js';

export type DdosConfig = NonNullable<ResolvedEnvironment['config']['ddos']>;
type Cloudflare = NonNullable<ResolvedEnvironment['config']['cloudflare']>;

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
  return { scope: w.scope, name: w.name, id: w.id, region: w.region ?? (w.scope === 'CLOUDFRONT' ? 'us-east-1' : env.config.aws?.region ?? 'us-east-1') };
}

/** Emergency rules replace same-named rules and are added otherwise; every other rule is kept as it is. */
export function mergeRules(current: WafRule[], emergency: WafRule[]): WafRule[] {
  const names = new Set(emergency.map((r) => r.Name));
  const kept = current.filter((r) => !names.has(r.Name));
  for (const e of emergency) {
    const clash = kept.find((k) => k.Priority === e.Priority);
    if (clash) throw new StepError(`emergency rule ${e.Name} has priority ${e.Priority}, already used by rule ${clash.Name} of the web ACL`, 'give the emergency rule a free priority in ddos.waf.rules');
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

async function waf(ctx: StepContext<unknown>) {
  const aws = await ctx.clients.aws();
  return aws.wafv2(wafRef(ctx.env).region);
}

/** What the WAF step did: the whole rule list before, and the names it merged. */
export interface WafData {
  previous: WafRule[];
  names: string[];
  retried: boolean;
}

/** Step `waf`: merge (or, for the revert, unmerge) the emergency rules, lock token read right before each update. */
export function wafStep<P>(opts: { revert: boolean }): Step<P> {
  const desired = (ctx: StepContext<P>, current: WafRule[]): WafRule[] => {
    if (!opts.revert) return mergeRules(current, emergencyRules(ctx.env));
    const rec = ctx.state.recorded as DdosRecord | undefined;
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
      const { getWebAcl } = await import('../../clients/wafv2.js');
      const cur = await getWebAcl(await waf(ctx as StepContext<unknown>), wafRef(ctx.env));
      const next = desired(ctx, cur.rules);
      if (sameRules(cur.rules, next)) return [];
      return [{ action: 'set rules of', target: `web ACL ${wafRef(ctx.env).name} (${wafRef(ctx.env).scope})`, before: ruleNames(cur.rules), after: ruleNames(next) }];
    },
    async run(ctx): Promise<WafData> {
      const { updateWebAclRules } = await import('../../clients/wafv2.js');
      const r = await updateWebAclRules(await waf(ctx as StepContext<unknown>), wafRef(ctx.env), (cur) => desired(ctx, cur));
      if (r.retried) ctx.log('the web ACL changed under us (WAFOptimisticLockException): re-read it and retried once');
      const names = opts.revert ? [] : emergencyRules(ctx.env).map((x) => x.Name);
      return { previous: r.before, names, retried: r.retried };
    },
    async undo(ctx, data) {
      const d = data as WafData;
      const { updateWebAclRules } = await import('../../clients/wafv2.js');
      await updateWebAclRules(await waf(ctx as StepContext<unknown>), wafRef(ctx.env), () => d.previous);
    },
    undoByHand: (ctx, data) => `${wafCli(ctx.env, 'previous-rules.json')}  # previous rules: ${JSON.stringify((data as WafData).previous)}`,
  };
}

/** Step `shield`: authorise the Shield Response Team's role (skipped when ddos.shield is not configured). */
export function shieldStep<P>(): Step<P> {
  const arn = (env: ResolvedEnvironment) => env.config.ddos!.shield!.drtRoleArn;
  return {
    id: 'shield',
    title: 'Give the Shield Response Team access (DRT role)',
    why: 'Lets the AWS Shield Response Team inspect and change WAF rules during the attack; the role that was associated before is recorded so the undo can put it back.',
    risk: 'write',
    when: (_p, env) => !!env.config.ddos?.shield,
    equivalent: (_p, env) => `aws shield associate-drt-role --role-arn ${arn(env)}`,
    async plan(ctx) {
      const { describeDrtRole } = await import('../../clients/shield-drt.js');
      const cur = await describeDrtRole(await (await ctx.clients.aws()).shield());
      if (cur === arn(ctx.env)) return [];
      return [{ action: 'associate DRT role', target: 'Shield Advanced subscription', before: cur ?? '∅', after: arn(ctx.env) }];
    },
    async run(ctx) {
      const { describeDrtRole, setDrtRole } = await import('../../clients/shield-drt.js');
      const shield = await (await ctx.clients.aws()).shield();
      const previous = await describeDrtRole(shield);
      await setDrtRole(shield, arn(ctx.env));
      return { previous };
    },
    async undo(ctx, data) {
      const { setDrtRole } = await import('../../clients/shield-drt.js');
      await setDrtRole(await (await ctx.clients.aws()).shield(), (data as { previous: string | null }).previous);
    },
    undoByHand: (_ctx, data) => {
      const prev = (data as { previous: string | null }).previous;
      return prev ? `aws shield associate-drt-role --role-arn ${prev}` : 'aws shield disassociate-drt-role';
    },
  };
}

/** Rate-limit variables to set (ddos) or to put back (revert). */
export function rateLimitChange(env: ResolvedEnvironment, revert: boolean, state: Record<string, unknown>): EnvChange {
  const vars = rateLimitVars(env);
  if (!revert) return { set: Object.entries(vars).map(([key, value]) => ({ key, value })), unset: [] };
  const prev = (state.recorded as DdosRecord | undefined)?.env;
  const change: EnvChange = { set: [], unset: [] };
  for (const key of Object.keys(vars)) {
    const v = prev?.find((e) => e.name === key)?.value;
    if (v === undefined) change.unset.push(key);
    else change.set.push({ key, value: v });
  }
  return change;
}

/** Step `ratelimit`: which variables the `apply` step sets or removes (read-only; needs the environment's config). */
export function rateLimitTargetStep<P>(opts: { revert: boolean }): Step<P> {
  return {
    id: 'ratelimit',
    title: opts.revert ? 'Work out the rate-limit variables to put back' : 'Work out the rate-limit variables',
    why: 'From ddos.rateLimit (requests per window in seconds); the revert uses the values the ddos run found.',
    risk: 'read',
    equivalent: (_p, env) => `# ${Object.entries(rateLimitVars(env)).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    run: async (ctx): Promise<EnvChange> => rateLimitChange(ctx.env, opts.revert, ctx.state),
  };
}

export interface ScaleData {
  from: number;
  to: number;
}

async function currentReplicas(ctx: StepContext<unknown>): Promise<number> {
  const kube = await ctx.clients.kube();
  return (await kube.getDeployment(deploymentName(ctx.env))).spec?.replicas ?? 0;
}

/** Step `scale`: like `app scale`, but only ever up (ddos), or back to the recorded count (revert). */
export function scaleStep<P>(opts: { revert: boolean }): Step<P> {
  const target = async (ctx: StepContext<P>): Promise<{ from: number; to: number } | null> => {
    const from = await currentReplicas(ctx as StepContext<unknown>);
    if (opts.revert) {
      const rec = (ctx.state.recorded as DdosRecord | undefined)?.scale;
      if (!rec) return null;
      if (from !== rec.to) {
        ctx.reporter.warn(`deployment has ${from} replicas, not the ${rec.to} the ddos run set: left as it is`);
        return null;
      }
      return from === rec.from ? null : { from, to: rec.from };
    }
    const want = (ctx.params as { replicas?: number }).replicas ?? ctx.env.config.ddos?.replicas;
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
    equivalent: (p, env) => `kubectl scale deployment/${deploymentName(env)} --replicas=${opts.revert ? '<recorded count>' : ((p as { replicas?: number }).replicas ?? env.config.ddos?.replicas ?? '<n>')} -n ${ns(env)}`,
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
      await kube.scaleDeployment(deploymentName(ctx.env), (data as ScaleData).from);
    },
    undoByHand: (ctx, data) => (data ? `kubectl scale deployment/${deploymentName(ctx.env)} --replicas=${(data as ScaleData).from} -n ${ns(ctx.env)}` : 'nothing to undo'),
  };
}

function cf(env: ResolvedEnvironment): Cloudflare {
  return env.config.cloudflare!;
}
const levelUrl = (env: ResolvedEnvironment) => `${cf(env).api.replace(/\/$/, '')}/zones/${encodeURIComponent(cf(env).zoneId)}/settings/security_level`;

async function cfCall(ctx: StepContext<unknown>, method: 'GET' | 'PATCH', value?: string): Promise<string> {
  const token = ctx.clients.secret(cf(ctx.env).token, `environments.${ctx.env.name}.cloudflare.token`);
  const res = await ctx.clients.http.request(levelUrl(ctx.env), {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: value === undefined ? undefined : JSON.stringify({ value }),
    signal: ctx.signal,
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

const curlLevel = (env: ResolvedEnvironment, value: string) =>
  `curl -X PATCH "${levelUrl(env)}" -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN" -H "Content-Type: application/json" --data '{"value":"${value}"}'`;

/** Step `cloudflare`: security level to under_attack (ddos) or back to what was recorded (revert). */
export function cloudflareStep<P>(opts: { revert: boolean }): Step<P> {
  const target = async (ctx: StepContext<P>): Promise<{ from: string; to: string } | null> => {
    const from = await cfCall(ctx as StepContext<unknown>, 'GET');
    if (!opts.revert) return from === 'under_attack' ? null : { from, to: 'under_attack' };
    const rec = (ctx.state.recorded as DdosRecord | undefined)?.cloudflare;
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
    async run(ctx) {
      const t = await target(ctx);
      if (!t) return null;
      await cfCall(ctx as StepContext<unknown>, 'PATCH', t.to);
      return t;
    },
    async undo(ctx, data) {
      if (data) await cfCall(ctx as StepContext<unknown>, 'PATCH', (data as { from: string }).from);
    },
    undoByHand: (ctx, data) => (data ? curlLevel(ctx.env, (data as { from: string }).from) : 'nothing to undo'),
  };
}

/** What the newest uncompensated `security ddos` run changed, from the journal. */
export interface DdosRecord {
  fromRun: string;
  waf?: WafData;
  env?: V1EnvVar[] | null;
  scale?: ScaleData;
  cloudflare?: { from: string; to: string };
}

const SCAN_LIMIT = 500;

export async function findLastDdos(dir: string, environment: string, excludeRun?: string): Promise<DdosRecord | null> {
  let names: string[];
  try {
    names = await readdir(join(dir, 'runs'));
  } catch {
    return null;
  }
  const ids = names.filter((n) => n.endsWith('.ndjson')).map((n) => n.slice(0, -'.ndjson'.length)).filter((id) => id !== excludeRun).sort().reverse().slice(0, SCAN_LIMIT);
  for (const id of ids) {
    const events = await readRun(dir, id).catch(() => []);
    const start = events.find((e) => e.type === 'run-start');
    if (!start || start.environment !== environment || start.dryRun !== 'off') continue;
    // A revert since then means there is nothing left to put back.
    if (start.procedure === 'security ddos-revert') return null;
    if (start.procedure !== 'security ddos') continue;
    const data = (step: string) => {
      const done = events.find((e) => e.type === 'step-end' && e.step === step && e.status === 'succeeded');
      const undone = events.some((e) => e.type === 'compensation' && e.step === step && e.status === 'succeeded');
      return done && !undone ? (done.data ?? undefined) : undefined;
    };
    const rec: DdosRecord = { fromRun: id };
    const w = data('waf') as WafData | undefined;
    if (w) rec.waf = w;
    const e = data('apply') as { previous: V1EnvVar[] | null } | undefined;
    if (e) rec.env = e.previous;
    const s = data('scale') as ScaleData | null | undefined;
    if (s) rec.scale = s;
    const c = data('cloudflare') as { from: string; to: string } | null | undefined;
    if (c) rec.cloudflare = c;
    if (rec.waf || rec.env !== undefined || rec.scale || rec.cloudflare) return rec;
  }
  return null;
}

/** Step `recorded` of the revert: find what the last ddos run replaced. */
export function recordedStep<P>(): Step<P> {
  return {
    id: 'recorded',
    title: 'Find what the last ddos run changed (journal)',
    why: 'The revert puts back exactly the values the ddos run found, which it recorded in the journal.',
    risk: 'read',
    equivalent: () => 'runbook history --procedure "security ddos" --limit 1',
    async run(ctx) {
      const rec = await findLastDdos(journalDir(ctx.io.env, ctx.env.journalDir), ctx.env.name, ctx.runId);
      if (rec) ctx.log(`putting back what run ${rec.fromRun} replaced`);
      else ctx.log('no earlier ddos run in the journal: emergency rules removed by name, rate-limit variables removed, Cloudflare back to medium');
      return rec;
    },
  };
}

/** Cross-field checks shared by both procedures: the section exists, the rules parse. */
export function validateDdos(env: ResolvedEnvironment, replicas?: number): void {
  if (!env.config.ddos) throw new UsageError(`environment "${env.name}" has no ddos section`, 'add environments.<name>.ddos (waf, shield, rateLimit, replicas)');
  if (env.config.ddos.waf && !env.config.aws) throw new UsageError(`environment "${env.name}" has ddos.waf but no aws section`);
  if (env.config.ddos.shield && !env.config.aws) throw new UsageError(`environment "${env.name}" has ddos.shield but no aws section`);
  emergencyRules(env);
  const max = env.config.limits.maxReplicas;
  const want = replicas ?? env.config.ddos.replicas;
  if (want !== undefined && want > max) throw new UsageError(`${replicas !== undefined ? '--replicas' : 'ddos.replicas'} ${want} is above this environment's limit of ${max}`, `raise environments.${env.name}.limits.maxReplicas if that is really intended`);
}
