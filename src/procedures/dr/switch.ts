import { pollHealth as pollHealthUrl } from '../shared/health.js';
import { shellQuote } from '../../core/shell.js';
import { lockTargets } from '../../core/lock.js';
import { describeRecord, sameRecord, type ChangeBatch, type RecordChange, type RecordSet } from '../../clients/route53.js';
import type { EcsServiceState } from '../../clients/ecs.js';
import { awsErrorMessage } from '../../clients/aws.js';
import type { EnvironmentConfig, ResolvedEnvironment } from '../../core/config.js';
import { parseDuration, formatDuration } from '../../core/duration.js';
import { CheckFailedError, StepError, UsageError } from '../../core/errors.js';
import { stepFor, type Change, type Procedure, type RunData, type StepContext, type StepRef } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { loadChangeBatch } from './change-batch.js';
import { sleep } from '../../core/sleep.js';

type DrConfig = NonNullable<EnvironmentConfig['dr']>;
type Side = DrConfig['primary'];
type HealthSpec = NonNullable<Side['health']>;

/** Which way traffic moves: failover (primary → DR) or failback (DR → primary). */
export interface Direction {
  name: 'failover' | 'failback';
  /** The side that will serve traffic. */
  to: 'dr' | 'primary';
  from: 'dr' | 'primary';
  /** The flag that skips stopping the old side. */
  keepFlag: string;
  /** The seed's DR count: 10. */
  defaultCount?: number;
}

export interface DrParams {
  keep?: boolean;
}

interface RecordPlan {
  name: string;
  type: string;
  setIdentifier?: string;
  action: RecordChange['Action'];
  before: RecordSet | null;
  after: RecordSet | null;
  /** False when the record is already as the batch wants it. */
  pending: boolean;
}

interface Inspection {
  zone: { id: string; name: string };
  records: RecordPlan[];
  to: EcsServiceState;
  from: EcsServiceState;
}

interface DnsData {
  changeId: string | null;
  submittedAt?: string;
  /** The records as they were just before the change, to restore on compensation. */
  restore: RecordChange[];
  records: Array<{ name: string; type: string; before: string; after: string }>;
}

interface ScaleData {
  region: string;
  cluster: string;
  service: string;
  from: number;
  to: number;
}

const sideLabel = (s: 'dr' | 'primary') => (s === 'dr' ? 'DR' : 'primary');

export function drConfig(env: ResolvedEnvironment): DrConfig {
  const dr = env.config.dr;
  if (!dr)
    throw new UsageError(
      `environment "${env.name}" has no dr section`,
      `add environments.${env.name}.dr (route53 zone + change batches, ECS services per region)`,
    );
  return dr;
}

function sideOf(env: ResolvedEnvironment, which: 'dr' | 'primary'): Side {
  return drConfig(env)[which];
}

/** Desired count of the side that takes over: configured, else the seed's DR count. */
function targetCount(env: ResolvedEnvironment, d: Direction): number {
  const side = sideOf(env, d.to);
  const n = side.desiredCount ?? d.defaultCount;
  if (n === undefined)
    throw new UsageError(`environments.${env.name}.dr.${d.to}.desiredCount is not set`, `${d.name} scales the ${sideLabel(d.to)} service to it`);
  return n;
}

/** The health check of the side that takes over; the primary may fall back to the environment's health URL. */
function healthOf(env: ResolvedEnvironment, which: 'dr' | 'primary'): HealthSpec | undefined {
  const side = sideOf(env, which);
  if (side.health) return side.health;
  const h = env.config.health;
  if (which === 'primary' && h) return { url: h.url, attempts: h.attempts, interval: h.interval, timeout: h.timeout, expectStatus: h.expectStatus };
  return undefined;
}

/** Everything `dr` needs from config, checked before anything is contacted (exit 2). */
export function validateDr(env: ResolvedEnvironment, d: Direction): void {
  drConfig(env);
  loadChangeBatch(env, d.name);
  targetCount(env, d);
  if (!healthOf(env, d.to))
    throw new UsageError(
      `environments.${env.name}.dr.${d.to}.health is not configured`,
      `${d.name} polls the ${sideLabel(d.to)} health URL before it stops anything`,
    );
  if (!env.config.aws) throw new UsageError(`environment "${env.name}" has no aws section`, 'dr needs aws (credentials come from the default chain)');
}

const awsLine = (err: unknown) => awsErrorMessage(err);
const errName = (err: unknown) => (typeof err === 'object' && err !== null && 'name' in err && typeof err.name === 'string' ? err.name : '');

async function inspect(ctx: StepContext<DrParams>, d: Direction): Promise<Inspection> {
  const route53 = await ctx.clients.route53();
  const dr = drConfig(ctx.env);
  let zone: { id: string; name: string };
  try {
    zone = await route53.getHostedZone(dr.route53.hostedZoneId);
  } catch (err) {
    if (errName(err) === 'NoSuchHostedZone')
      throw new UsageError(
        `unknown hosted zone ${dr.route53.hostedZoneId}: ${awsLine(err)}`,
        `check environments.${ctx.env.name}.dr.route53.hostedZoneId (aws route53 list-hosted-zones)`,
      );
    throw new StepError(`cannot read hosted zone ${dr.route53.hostedZoneId}: ${awsLine(err)}`);
  }
  const { batch } = loadChangeBatch(ctx.env, d.name);
  const records: RecordPlan[] = [];
  for (const c of batch.Changes) {
    const rr = c.ResourceRecordSet;
    const before = await route53.findRecordSet(zone.id, rr.Name, rr.Type, rr.SetIdentifier);
    const after = c.Action === 'DELETE' ? null : rr;
    if (c.Action === 'CREATE' && before && !sameRecord(before, rr)) {
      throw new UsageError(`change batch CREATEs ${rr.Name} ${rr.Type}, which already exists with other values`, 'use UPSERT in the change batch');
    }
    const pending = c.Action === 'DELETE' ? before !== null : !sameRecord(before, rr);
    records.push({ name: rr.Name, type: rr.Type, setIdentifier: rr.SetIdentifier, action: c.Action, before, after, pending });
  }
  const ecs = await ctx.clients.ecs();
  const svc = async (which: 'dr' | 'primary') => {
    const s = sideOf(ctx.env, which);
    let state: EcsServiceState | null;
    try {
      state = await ecs.describeService(s.region, s.cluster, s.service);
    } catch (err) {
      if (errName(err) === 'ClusterNotFoundException') state = null;
      else throw new StepError(`cannot describe ECS service ${s.cluster}/${s.service} in ${s.region}: ${awsLine(err)}`);
    }
    if (!state) throw new UsageError(`ECS service ${s.cluster}/${s.service} not found in ${s.region}`, `check environments.${ctx.env.name}.dr.${which}`);
    return state;
  };
  const to = await svc(d.to);
  const from = await svc(d.from);
  return { zone, records, to, from };
}

/** The batch that puts back `before` for each record the change touched. */
function inverseChanges(records: Array<{ before: RecordSet | null; after: RecordSet | null }>): RecordChange[] {
  const out: RecordChange[] = [];
  for (const r of records) {
    if (r.before) out.push({ Action: 'UPSERT', ResourceRecordSet: r.before });
    else if (r.after) out.push({ Action: 'DELETE', ResourceRecordSet: r.after });
  }
  return out;
}

function changeBatchArg(changes: RecordChange[], comment: string): string {
  return shellQuote(JSON.stringify({ Comment: comment, Changes: changes }));
}

async function waitInsync(
  ctx: StepContext<DrParams>,
  changeId: string,
  timeoutMs: number,
  intervalMs: number,
): Promise<{ status: string; waitedMs: number; polls: number }> {
  const route53 = await ctx.clients.route53();
  const t0 = performance.now();
  let polls = 0;
  let status: string;
  for (;;) {
    polls++;
    try {
      status = await route53.getChangeStatus(changeId);
    } catch (err) {
      throw new StepError(`cannot read Route 53 change ${changeId}: ${awsLine(err)}`, `aws route53 get-change --id ${changeId}`);
    }
    if (status === 'INSYNC') return { status, waitedMs: Math.round(performance.now() - t0), polls };
    if (performance.now() - t0 + intervalMs > timeoutMs) break;
    ctx.log(`Route 53 change ${changeId}: ${status}`);
    await sleep(intervalMs, ctx.signal);
  }
  throw new StepError(`Route 53 change ${changeId} still ${status} after ${formatDuration(timeoutMs)}`, `aws route53 get-change --id ${changeId}`);
}

async function pollHealth(
  ctx: StepContext<DrParams>,
  h: HealthSpec,
): Promise<{ url: string; status: number; attempts: number } | { unhealthy: string; attempts: number }> {
  const r = await pollHealthUrl(ctx, h, (attempt, problem) => ctx.log(`health ${attempt}/${h.attempts}: ${problem}`));
  return r.healthy ? { url: r.url, status: r.status, attempts: r.attempts } : { unhealthy: r.problem, attempts: r.attempts };
}

function scaleChange(s: { region: string; cluster: string; service: string }, from: number, to: number): Change {
  return { action: 'set desired count', target: `ecs ${s.region} ${s.cluster}/${s.service}`, before: String(from), after: String(to) };
}

function ecsCmd(s: { region: string; cluster: string; service: string }, n: number): string {
  return `aws ecs update-service --region ${s.region} --cluster ${s.cluster} --service ${s.service} --desired-count ${n}`;
}

/**
 * The steps of a switch-over: inspect → (severe gate) DNS change → INSYNC → scale the new side →
 * its health → (separate gate) stop the old side. Used by `dr failover` and `dr failback`.
 */
export function switchSteps(d: Direction) {
  const to = sideLabel(d.to);
  const from = sideLabel(d.from);
  const step = stepFor<DrParams>();
  const insp = (ctx: Pick<StepContext<DrParams>, 'get'>) => ctx.get(inspectStep);

  const inspectStep = step({
    id: 'inspect',
    title: `Read the DNS records and both ECS services`,
    why: 'The records the batch touches and the desired counts are recorded first: the plan shows before → after, and a failure can put back exactly what was there.',
    risk: 'read',
    equivalent: (_p, env) => {
      const dr = env.config.dr;
      return dr
        ? `aws route53 list-resource-record-sets --hosted-zone-id ${dr.route53.hostedZoneId} && aws ecs describe-services --region ${dr.dr.region} --cluster ${dr.dr.cluster} --services ${dr.dr.service} && aws ecs describe-services --region ${dr.primary.region} --cluster ${dr.primary.cluster} --services ${dr.primary.service}`
        : 'aws route53 list-resource-record-sets … && aws ecs describe-services …';
    },
    async run(ctx): Promise<Inspection> {
      const i = await inspect(ctx, d);
      for (const r of i.records) if (!r.pending) ctx.log(`${r.name} ${r.type} already ${r.action === 'DELETE' ? 'absent' : 'as the batch wants'}`);
      return i;
    },
  });

  const dns = step({
    id: 'dns',
    title: `Point DNS at the ${to} region (Route 53)`,
    why: `Moves user traffic to the ${to} region with the configured change batch. Only the records that differ are sent, and the previous values are kept to put back on failure.`,
    risk: 'destructive',
    severe: true,
    equivalent: (_p, env) =>
      `aws route53 change-resource-record-sets --hosted-zone-id ${env.config.dr?.route53.hostedZoneId ?? '$ZONE_ID'} --change-batch file://${typeof env.config.dr?.route53[d.name] === 'string' ? env.config.dr?.route53[d.name] : `dr-${d.name}.json`}`,
    async plan(ctx) {
      return insp(ctx)
        .records.filter((r) => r.pending)
        .map((r) => ({
          action: `${r.action} ${r.type}`,
          target: `${r.name}${r.setIdentifier ? ` [${r.setIdentifier}]` : ''} in zone ${insp(ctx).zone.name || insp(ctx).zone.id}`,
          before: describeRecord(r.before),
          after: describeRecord(r.after),
        }));
    },
    async run(ctx): Promise<DnsData> {
      const route53 = await ctx.clients.route53();
      const zone = insp(ctx).zone;
      const { batch } = loadChangeBatch(ctx.env, d.name);
      // Re-read right before the change: what we put back must be what was really there.
      const changes: RecordChange[] = [];
      const touched: Array<{ before: RecordSet | null; after: RecordSet | null; change: RecordChange }> = [];
      for (const c of batch.Changes) {
        const rr = c.ResourceRecordSet;
        const before = await route53.findRecordSet(zone.id, rr.Name, rr.Type, rr.SetIdentifier);
        const after = c.Action === 'DELETE' ? null : rr;
        const pending = c.Action === 'DELETE' ? before !== null : !sameRecord(before, rr);
        if (!pending) continue;
        // A CREATE of a record that appeared meanwhile would fail the whole batch; UPSERT says what we mean.
        const change: RecordChange =
          c.Action === 'CREATE'
            ? { Action: 'UPSERT', ResourceRecordSet: rr }
            : c.Action === 'DELETE' && before
              ? { Action: 'DELETE', ResourceRecordSet: before }
              : c;
        changes.push(change);
        touched.push({ before, after, change });
      }
      const records = touched.map((t) => ({
        name: t.change.ResourceRecordSet.Name,
        type: t.change.ResourceRecordSet.Type,
        before: describeRecord(t.before),
        after: describeRecord(t.after),
      }));
      if (changes.length === 0) return { changeId: null, restore: [], records };
      const submitted: ChangeBatch = { Comment: `runbook dr ${d.name} run ${ctx.runId}`, Changes: changes };
      let res;
      try {
        res = await route53.changeRecordSets(zone.id, submitted);
      } catch (err) {
        throw new StepError(`Route 53 rejected the change batch (nothing was changed): ${awsLine(err)}`, 'fix the change batch, then run again');
      }
      ctx.log(`Route 53 change ${res.changeId} submitted (${res.status})`);
      return { changeId: res.changeId, submittedAt: ctx.now().toISOString(), restore: inverseChanges(touched), records };
    },
    async undo(ctx, data) {
      if (!data.changeId || data.restore.length === 0) return;
      const route53 = await ctx.clients.route53();
      const res = await route53.changeRecordSets(insp(ctx).zone.id, { Comment: `runbook dr ${d.name} run ${ctx.runId}: put back`, Changes: data.restore });
      const r53 = drConfig(ctx.env).route53;
      // Route 53 accepted the put-back; not being able to watch it propagate is worth a warning, not a failure.
      await waitInsync(ctx, res.changeId, parseDuration(r53.syncTimeout), parseDuration(r53.syncInterval)).catch((err: unknown) =>
        ctx.reporter.warn(`put-back change ${res.changeId} accepted; could not confirm INSYNC: ${err instanceof StepError ? err.message : awsLine(err)}`),
      );
    },
    undoByHand: (ctx, data) =>
      `aws route53 change-resource-record-sets --hosted-zone-id ${drConfig(ctx.env).route53.hostedZoneId} --change-batch ${changeBatchArg(data.restore, 'put back')}`,
    postcondition: {
      describe: `every record of the ${d.name} change batch is as the batch wants (DNS points at ${to})`,
      // DNS was moved again after this run moved it: someone's decision about where users go, which a
      // resume must not overrule by moving them once more.
      unsafeToRerun: (ctx) =>
        `look at the records first (aws route53 list-resource-record-sets --hosted-zone-id ${drConfig(ctx.env).route53.hostedZoneId}), then run dr ${d.name} -e ${ctx.env.name} again if users should still go to ${to}`,
      async check(ctx) {
        const off = await recordsNotAsBatch(ctx, d, insp(ctx).zone.id);
        return off.length === 0 ? { holds: true } : { holds: false, found: off.join('; ') };
      },
    },
  });

  const sync = step({
    id: 'sync',
    title: 'Wait until the DNS change is INSYNC',
    why: 'Route 53 answers PENDING until every authoritative server has the change; scaling and health checks only mean something after that.',
    risk: 'read',
    followsWrite: true,
    equivalent: () => 'aws route53 wait resource-record-sets-changed --id $CHANGE_ID',
    plan: async (ctx) => [{ action: 'wait for INSYNC', target: 'the Route 53 change', after: `within ${drConfig(ctx.env).route53.syncTimeout}` }],
    async run(ctx) {
      const changed = ctx.find(dns);
      if (!changed?.changeId) return { status: 'unchanged' };
      const r53 = drConfig(ctx.env).route53;
      return { changeId: changed.changeId, ...(await waitInsync(ctx, changed.changeId, parseDuration(r53.syncTimeout), parseDuration(r53.syncInterval))) };
    },
    postcondition: {
      describe: 'the DNS change is INSYNC',
      // A read: waiting again is safe.
      async check(ctx) {
        const id = ctx.find(dns)?.changeId;
        if (!id) return { holds: true };
        const status = await (await ctx.clients.route53()).getChangeStatus(id);
        return status === 'INSYNC' ? { holds: true } : { holds: false, found: `Route 53 change ${id} is ${status}` };
      },
    },
  });

  const scale = step({
    id: 'scale',
    title: `Scale the ${to} ECS service up`,
    why: `The ${to} region must carry the full load now that DNS sends users there.`,
    risk: 'write',
    equivalent: (_p, env) => {
      const s = env.config.dr?.[d.to];
      return s ? ecsCmd(s, s.desiredCount ?? d.defaultCount ?? 0) : 'aws ecs update-service …';
    },
    async plan(ctx) {
      const cur = insp(ctx).to;
      const want = targetCount(ctx.env, d);
      return cur.desired === want ? [] : [scaleChange(cur, cur.desired, want)];
    },
    async run(ctx): Promise<ScaleData> {
      const ecs = await ctx.clients.ecs();
      const s = sideOf(ctx.env, d.to);
      const want = targetCount(ctx.env, d);
      let before: number;
      try {
        before = (await ecs.describeService(s.region, s.cluster, s.service))?.desired ?? insp(ctx).to.desired;
        await ecs.setDesiredCount(s.region, s.cluster, s.service, want);
      } catch (err) {
        throw new StepError(`ECS could not scale ${s.cluster}/${s.service} in ${s.region}: ${awsLine(err)}`);
      }
      return { region: s.region, cluster: s.cluster, service: s.service, from: before, to: want };
    },
    async undo(ctx, s) {
      await (await ctx.clients.ecs()).setDesiredCount(s.region, s.cluster, s.service, s.from);
    },
    undoByHand: (_ctx, s) => ecsCmd(s, s.from),
    postcondition: {
      describe: `the ${to} ECS service is at the desired count`,
      // DNS sends users to ${to}: scaling it to the configured count again is what the run is for (gated again), and safe.
      async check(ctx, data) {
        const now = await desiredNow(ctx, data);
        return now === data.to
          ? { holds: true }
          : { holds: false, found: `ecs ${data.region} ${data.cluster}/${data.service} wants ${now ?? '(service gone)'}, not ${data.to}` };
      },
    },
  });

  const health = step({
    id: 'health',
    title: `Poll the ${to} health URL`,
    why: `Nothing is stopped until the ${to} region answers its health check (the seed stopped the primary even when DR never turned healthy). Once it does, the switch is complete and is no longer undone.`,
    risk: 'read',
    followsWrite: true,
    settles: ['dns', 'scale'],
    equivalent: (_p, env) => {
      const h = env.config.dr ? healthOf(env, d.to) : undefined;
      return h ? `for i in $(seq ${h.attempts}); do curl -fsS ${h.url} && break; sleep ${parseDuration(h.interval) / 1000}; done` : 'curl -fsS <health url>';
    },
    plan: async (ctx) => {
      const h = healthOf(ctx.env, d.to)!;
      return [{ action: 'poll until healthy', target: h.url, after: `${h.attempts} × ${h.interval}` }];
    },
    async run(ctx) {
      const h = healthOf(ctx.env, d.to)!;
      const r = await pollHealth(ctx, h);
      if ('status' in r) return r;
      throw new CheckFailedError(
        unhealthyMessage(ctx, d, h, r, { inspect: inspectStep, dns, scale }),
        `fail back with: runbook dr ${d.name === 'failover' ? 'failback' : 'failover'} -e ${ctx.env.name}   (or keep waiting and re-run this command; it only changes what still differs)`,
      );
    },
    postcondition: {
      describe: `the ${to} health URL answers`,
      // One look: if it does not answer now, the step polls again with all its attempts before anything is stopped.
      async check(ctx) {
        const h = healthOf(ctx.env, d.to)!;
        const r = await pollHealthUrl(ctx, { ...h, attempts: 1 });
        return r.healthy ? { holds: true } : { holds: false, found: `${h.url}: ${r.problem}` };
      },
    },
  });

  const stop = step({
    id: 'stop',
    title: `Stop the ${from} ECS service`,
    why: `Frees the ${from} region once the ${to} region serves traffic. A separate gate, after the health check, because it cannot be taken back instantly; ${d.keepFlag} skips it.`,
    risk: 'destructive',
    when: (p) => !p.keep,
    equivalent: (_p, env) => {
      const s = env.config.dr?.[d.from];
      return s ? ecsCmd(s, s.standbyCount) : 'aws ecs update-service … --desired-count 0';
    },
    async plan(ctx) {
      const cur = insp(ctx).from;
      const want = sideOf(ctx.env, d.from).standbyCount;
      return cur.desired === want ? [] : [scaleChange(cur, cur.desired, want)];
    },
    async run(ctx): Promise<ScaleData> {
      const s = sideOf(ctx.env, d.from);
      const before = insp(ctx).from.desired;
      try {
        await (await ctx.clients.ecs()).setDesiredCount(s.region, s.cluster, s.service, s.standbyCount);
      } catch (err) {
        throw new StepError(
          `the ${d.name} itself is complete (DNS → ${to}, ${to} healthy), but stopping the ${from} service failed: ${awsLine(err)}`,
          `the ${from} service still runs at ${before}; stop it later with: ${ecsCmd(s, s.standbyCount)}`,
        );
      }
      return { region: s.region, cluster: s.cluster, service: s.service, from: before, to: s.standbyCount };
    },
    undoByHand: (_ctx, s) => ecsCmd(s, s.from),
    postcondition: {
      describe: `the ${from} ECS service is at its standby count`,
      // Started again after this run stopped it: someone wanted it running; stopping it again is a person's call.
      unsafeToRerun: (ctx) => {
        const s = sideOf(ctx.env, d.from);
        return `look at why the ${from} service runs again (aws ecs describe-services --region ${s.region} --cluster ${s.cluster} --services ${s.service}); stop it by hand if it should stop: ${ecsCmd(s, s.standbyCount)}`;
      },
      async check(ctx, data) {
        const now = await desiredNow(ctx, data);
        return now === data.to
          ? { holds: true }
          : { holds: false, found: `ecs ${data.region} ${data.cluster}/${data.service} wants ${now ?? '(service gone)'}, not ${data.to}` };
      },
    },
  });

  return { inspect: inspectStep, dns, sync, scale, health, stop };
}

/** Each record of the direction's change batch that is not as the batch wants it now, in words (empty: all are). */
async function recordsNotAsBatch(ctx: StepContext<DrParams>, d: Direction, zoneId: string): Promise<string[]> {
  const route53 = await ctx.clients.route53();
  const off: string[] = [];
  for (const c of loadChangeBatch(ctx.env, d.name).batch.Changes) {
    const rr = c.ResourceRecordSet;
    const now = await route53.findRecordSet(zoneId, rr.Name, rr.Type, rr.SetIdentifier);
    const pending = c.Action === 'DELETE' ? now !== null : !sameRecord(now, rr);
    if (pending) off.push(`${rr.Name} ${rr.Type} is ${describeRecord(now)}, not ${describeRecord(c.Action === 'DELETE' ? null : rr)}`);
  }
  return off;
}

/** An ECS service's desired count now (null: the service is gone). */
async function desiredNow(ctx: StepContext<DrParams>, s: { region: string; cluster: string; service: string }): Promise<number | null> {
  return (await (await ctx.clients.ecs()).describeService(s.region, s.cluster, s.service))?.desired ?? null;
}

/** The typed steps of one switch-over, for its approval, its messages and its output. */
export type SwitchSteps = ReturnType<typeof switchSteps>;

function unhealthyMessage(
  run: RunData,
  d: Direction,
  h: HealthSpec,
  r: { unhealthy: string; attempts: number },
  steps: { inspect: StepRef<Inspection>; dns: StepRef<DnsData>; scale: StepRef<ScaleData> },
): string {
  const dns = run.find(steps.dns);
  const scale = run.find(steps.scale);
  const i = run.get(steps.inspect);
  const to = sideLabel(d.to);
  const dnsState = dns?.changeId
    ? `DNS now points at ${to} (${dns.records.map((x) => `${x.name} ${x.type}: ${x.before} → ${x.after}`).join('; ')}; change ${dns.changeId} INSYNC)`
    : `DNS already pointed at ${to} before this run`;
  const scaleState = scale ? `${to} ${scale.cluster}/${scale.service} desired ${scale.from} → ${scale.to}` : `${to} service desired ${i.to.desired}`;
  return `${to} not healthy at ${h.url} after ${r.attempts} attempts (${r.unhealthy}); stopped before touching the ${sideLabel(d.from)} (still desired ${i.from.desired}). ${dnsState}; ${scaleState}`;
}

/** The lines of the one approval for DNS + scale (the inspect step has run). */
function switchSummary(ctx: StepContext<DrParams>, d: Direction, steps: SwitchSteps): string[] {
  const i = ctx.get(steps.inspect);
  const to = sideLabel(d.to);
  const from = sideLabel(d.from);
  const pending = i.records.filter((r) => r.pending);
  const want = targetCount(ctx.env, d);
  const h = healthOf(ctx.env, d.to)!;
  const lines = [
    pending.length
      ? `point DNS at ${to}: ${pending.map((r) => `${r.name} ${r.type} ${describeShort(r.before)} → ${describeShort(r.after)}`).join('; ')} (users move to ${to})`
      : `DNS already points at ${to} (nothing to change)`,
    i.to.desired === want
      ? `${to} ${i.to.cluster}/${i.to.service} already at ${want}`
      : `scale ${to} ${i.to.cluster}/${i.to.service} ${i.to.desired} → ${want}`,
    `then poll ${h.url} (${h.attempts} × ${h.interval}); if ${to} never turns healthy the run stops there (exit 4), DNS left at ${to}, nothing stopped`,
  ];
  if (!ctx.params.keep)
    lines.push(
      `asked separately after the health check: stop the ${from} service (${i.from.cluster}/${i.from.service}, ${i.from.desired} → ${sideOf(ctx.env, d.from).standbyCount})`,
    );
  return lines;
}

function describeShort(r: RecordSet | null): string {
  if (!r) return '∅';
  return r.ResourceRecords?.map((x) => x.Value).join(',') ?? (r.AliasTarget ? `alias ${r.AliasTarget.DNSName}` : '?');
}

/** stdout for a finished switch: each record and each service, before → after. */
export function renderSwitch(run: RunData, steps: SwitchSteps): string {
  const i = run.find(steps.inspect);
  if (!i) return '';
  const dns = run.find(steps.dns);
  const scale = run.find(steps.scale);
  const stop = run.find(steps.stop);
  const rows: Array<Array<string | number>> = [];
  for (const r of dns?.records ?? []) rows.push(['dns', `${r.name} ${r.type}`, r.before, r.after]);
  if (dns && dns.records.length === 0) rows.push(['dns', i.records.map((r) => `${r.name} ${r.type}`).join(', '), '(already set)', '(unchanged)']);
  for (const s of [scale, stop]) if (s) rows.push(['ecs', `${s.region} ${s.cluster}/${s.service}`, s.from, s.to]);
  const health = run.find(steps.health);
  if (health) rows.push(['health', health.url, '', `healthy after ${health.attempts} attempt(s)`]);
  return table(['KIND', 'TARGET', 'BEFORE', 'AFTER'], rows);
}

/** The shared parts of `dr failover` and `dr failback`. */
export function switchProcedure(d: Direction, extra: Pick<Procedure<DrParams>, 'name' | 'summary' | 'seedFixes' | 'examples'>): Procedure<DrParams> {
  const steps = switchSteps(d);
  return {
    ...extra,
    params: [{ name: 'keep', flag: d.keepFlag, description: `do not stop the ${sideLabel(d.from)} service at the end`, type: 'boolean', default: false }],
    requires: ['aws'],
    // The DNS zone it switches, and the ECS services of both sides it scales.
    locks: (_p, env) => {
      const dr = env.config.dr;
      return dr
        ? [lockTargets.route53(dr.route53.hostedZoneId), lockTargets.ecs(dr.primary.cluster, dr.primary.service), lockTargets.ecs(dr.dr.cluster, dr.dr.service)]
        : [];
    },
    validate: (_p, env) => validateDr(env, d),
    // Moving DNS and scaling the side that takes the traffic are one decision: a "no" between them
    // would leave users sent to a region that was never scaled. Stopping the old side stays its own gate.
    approval: { before: 'dns', until: 'scale', summary: (ctx) => switchSummary(ctx, d, steps) },
    steps: [steps.inspect, steps.dns, steps.sync, steps.scale, steps.health, steps.stop],
    render: (run) => renderSwitch(run, steps),
  };
}
