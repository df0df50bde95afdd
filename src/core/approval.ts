import type { EnvironmentConfig, ResolvedEnvironment, ValueOrRef } from './config.js';
import { describeRef } from './config.js';
import { monotonicMs } from './clock.js';
import { durationMs, formatDuration } from './duration.js';
import { GateError, StepError, UsageError, errorMessage, httpStatusOf } from './errors.js';
import { sha256Hex } from './hash.js';
import type { GateKind } from './gates.js';
import type { KubePermission } from './kube-permissions.js';
import type { Change, Risk } from './plan.js';

/** An environment's `approval` section (config-schema): who else must say yes, for which gates, where, for how long. */
export type ApprovalConfig = NonNullable<EnvironmentConfig['approval']>;

/** Whether a gate the operator has just approved also waits for a second person (`approval.for`). */
export function approvalCovers(cfg: ApprovalConfig | undefined, kind: GateKind, risk: Risk): boolean {
  if (!cfg || cfg.required < 2 || kind === 'none' || risk === 'read') return false;
  return cfg.for.includes(risk === 'destructive' ? 'destructive' : 'write');
}

/** What the run will act on, resolved: an approval is for these systems and no others. No secrets in here. */
export interface ApprovalTargets {
  kubernetes?: { server: string; context: string; namespace: string; deployment: string };
  /** `account`: what STS says the credentials sign in to, so an approval for one account never covers another. */
  aws?: { region: string; account?: string; profile?: string; endpoint?: string };
  rds?: { instance: string };
  /** host:port/database of the primary PostgreSQL (never the user or password). */
  database?: string;
  /** host:port/db of Redis, or the cluster's seed nodes. */
  redis?: string;
}

/** What one approved gate covers: a step's previewed changes, or a plan approval's lines. */
export interface ApprovalItem {
  step: string;
  title: string;
  lines?: string[];
  changes?: Array<Pick<Change, 'action' | 'target' | 'before' | 'after'>>;
}

/** Exactly what the second person approves; its digest binds the decision to it. */
export interface ApprovalPlan {
  runId: string;
  procedure: string;
  environment: string;
  targets: ApprovalTargets;
  items: ApprovalItem[];
}

/** Where a database or Redis URL points, without its user or password (an unresolvable reference is named as such). */
export function hostOfUrl(url: string): string {
  try {
    const u = new URL(url);
    const path = u.pathname && u.pathname !== '/' ? u.pathname : '';
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${path}`;
  } catch {
    return '(not a URL)';
  }
}

/**
 * The targets of a run, from the environment and what the clients report (the Kubernetes server the
 * kubeconfig points at). Only the sections the procedure uses, like the target banner; `resolve` reads
 * a secret reference (already resolved before the run) and may fail, in which case the reference is named.
 */
export function approvalTargets(
  env: ResolvedEnvironment,
  uses: readonly string[],
  facts: { kube?: { server: string; context: string; namespace: string }; awsAccount?: string; resolve(ref: ValueOrRef, what: string): string },
): ApprovalTargets {
  const c = env.config;
  const used = new Set(uses);
  const where = (ref: ValueOrRef, what: string) => {
    if (typeof ref === 'string') return hostOfUrl(ref);
    try {
      return hostOfUrl(facts.resolve(ref, what));
    } catch {
      return describeRef(ref);
    }
  };
  const t: ApprovalTargets = {};
  if (c.kubernetes && facts.kube) t.kubernetes = { ...facts.kube, deployment: c.kubernetes.deployment };
  if (c.aws && (used.has('aws') || used.has('rds')))
    t.aws = {
      region: c.aws.region,
      ...(facts.awsAccount ? { account: facts.awsAccount } : {}),
      ...(c.aws.profile ? { profile: c.aws.profile } : {}),
      ...(c.aws.endpoint ? { endpoint: c.aws.endpoint } : {}),
    };
  if (c.rds && used.has('rds')) t.rds = { instance: c.rds.instance };
  if (c.postgres && (used.has('postgres') || used.has('rds'))) t.database = where(c.postgres.url, `environments.${env.name}.postgres.url`);
  if (c.redis && used.has('redis')) {
    const r = c.redis;
    t.redis = r.url ? where(r.url, `environments.${env.name}.redis.url`) : `cluster ${(r.nodes ?? []).join(',')}`;
    if (r.db) t.redis += ` db ${r.db}`;
  }
  return t;
}

/** The item a gated step contributes: its previewed changes, as the approver sees them. */
export function stepItem(step: { id: string; title: string }, changes: readonly Change[], lines?: string[]): ApprovalItem {
  return {
    step: step.id,
    title: step.title,
    ...(lines ? { lines } : {}),
    changes: changes.map((ch) => ({
      action: ch.action,
      target: ch.target,
      ...(ch.before !== undefined ? { before: ch.before } : {}),
      ...(ch.after !== undefined ? { after: ch.after } : {}),
    })),
  };
}

/** JSON with object keys sorted at every level and no whitespace: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function planText(plan: ApprovalPlan): string {
  return canonicalJson({ runId: plan.runId, procedure: plan.procedure, environment: plan.environment, targets: plan.targets, items: plan.items });
}

/** sha256 (hex) of the plan's canonical JSON. */
export function planDigest(plan: ApprovalPlan): string {
  return sha256Hex(planText(plan));
}

/** What differs between the approved plan and the plan now, in words (empty: the same). */
export function planDifferences(approved: ApprovalPlan, now: ApprovalPlan): string[] {
  const out: string[] = [];
  const flat = (t: ApprovalTargets) => {
    const m = new Map<string, string>();
    for (const [k, v] of Object.entries(t)) {
      if (v === undefined) continue;
      if (typeof v === 'string') m.set(k, v);
      else for (const [kk, vv] of Object.entries(v as Record<string, unknown>)) if (vv !== undefined) m.set(`${k} ${kk}`, String(vv));
    }
    return m;
  };
  const a = flat(approved.targets);
  const b = flat(now.targets);
  for (const k of new Set([...a.keys(), ...b.keys()])) if (a.get(k) !== b.get(k)) out.push(`${k}: ${a.get(k) ?? '(none)'} → ${b.get(k) ?? '(none)'}`);
  for (const key of ['runId', 'procedure', 'environment'] as const) if (approved[key] !== now[key]) out.push(`${key}: ${approved[key]} → ${now[key]}`);
  const describe = (ch: NonNullable<ApprovalItem['changes']>[number]) =>
    `${ch.action} ${ch.target}${ch.before !== undefined || ch.after !== undefined ? `: ${ch.before ?? '∅'} → ${ch.after ?? '∅'}` : ''}`;
  const items = Math.max(approved.items.length, now.items.length);
  for (let i = 0; i < items; i++) {
    const x = approved.items[i];
    const y = now.items[i];
    if (!x || !y || x.step !== y.step) {
      out.push(`step ${x?.step ?? '(none)'} → ${y?.step ?? '(none)'}`);
      continue;
    }
    const xl = x.lines ?? [];
    const yl = y.lines ?? [];
    for (let j = 0; j < Math.max(xl.length, yl.length); j++) if (xl[j] !== yl[j]) out.push(`"${xl[j] ?? ''}" is now "${yl[j] ?? ''}"`);
    const xc = (x.changes ?? []).map(describe);
    const yc = (y.changes ?? []).map(describe);
    const gone = xc.filter((c) => !yc.includes(c));
    const added = yc.filter((c) => !xc.includes(c));
    if (gone.length || added.length) out.push(`${x.title}: approved "${gone.join('; ') || '(nothing else)'}", now "${added.join('; ') || '(nothing else)'}"`);
  }
  return out;
}

// --- the request object -------------------------------------------------------------------------------

export const APPROVAL_LABEL = 'runbook.dev/approval';
export const RUN_LABEL = 'runbook.dev/run';
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'runbook' };
export const REQUEST_PREFIX = 'runbook-approval-';
/** The RBAC rule that makes someone an approver: `verbs: [approve]` on `approvals.runbook.dev`. */
export const APPROVE_PERMISSION = { verb: 'approve', group: 'runbook.dev', resource: 'approvals' } as const;
/** What a requester needs in the approvals namespace (expired requests of others are deleted by the next). */
export const REQUESTER_VERBS = ['create', 'delete', 'get', 'list', 'patch', 'watch'] as const;
/** What an approver needs there, besides APPROVE_PERMISSION. */
export const APPROVER_VERBS = ['get', 'list', 'patch', 'watch'] as const;

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'cancelled' | 'expired';
const STATES: readonly ApprovalState[] = ['pending', 'approved', 'denied', 'cancelled', 'expired'];

/** The request's name: the run's first gate `runbook-approval-<run id>`, later ones `-2`, `-3` … */
export function requestName(runId: string, n = 1): string {
  return `${REQUEST_PREFIX}${runId.toLowerCase()}${n > 1 ? `-${n}` : ''}`;
}

/** A ConfigMap as the approval code reads and writes it (the Kubernetes client's V1ConfigMap fits). */
export interface ConfigMapLike {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; creationTimestamp?: Date };
  data?: Record<string, string>;
}

/**
 * The Kubernetes calls approval makes (the Kubernetes client provides them, like LeaseStore for the lock).
 * Errors carry the HTTP `status`.
 */
export interface ApprovalStore {
  whoAmI(): Promise<{ username: string; groups: string[] }>;
  getConfigMap(namespace: string, name: string): Promise<ConfigMapLike | null>;
  listConfigMaps(namespace: string, labelSelector?: string): Promise<ConfigMapLike[]>;
  createConfigMap(namespace: string, cm: ConfigMapLike, opts?: { dryRun?: boolean }): Promise<ConfigMapLike>;
  patchConfigMap(
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
    opts?: { dryRun?: boolean; resourceVersion?: string },
  ): Promise<ConfigMapLike>;
  deleteConfigMap(namespace: string, name: string, resourceVersion?: string): Promise<void>;
  watchConfigMap(
    namespace: string,
    name: string,
    onEvent: (ev: { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'; object: ConfigMapLike }) => boolean | void,
    signal: AbortSignal,
  ): Promise<void>;
  cannotDo(permissions: KubePermission[], namespace?: string): Promise<KubePermission[]>;
  readonly server: string;
}

/** A request read back from its ConfigMap. */
export interface ApprovalRequest {
  name: string;
  namespace: string;
  uid?: string;
  resourceVersion?: string;
  runId: string;
  procedure: string;
  environment: string;
  requester: string;
  operator: string;
  step: string;
  plan: ApprovalPlan;
  digest: string;
  requestedAt: string;
  expiresAt: string;
  state: ApprovalState;
  approver?: string;
  approvedDigest?: string;
  decidedAt?: string;
  reason?: string;
  /** The plan's text does not hash to `digest`, or does not name this run: never approvable. */
  tampered?: string;
}

/** Parses a request ConfigMap; null when it is not one (no data, or not made by runbook). */
export function readRequest(cm: ConfigMapLike): ApprovalRequest | null {
  const d = cm.data;
  const name = cm.metadata?.name ?? '';
  if (!d || !name.startsWith(REQUEST_PREFIX) || cm.metadata?.labels?.[APPROVAL_LABEL] !== 'request') return null;
  let plan: ApprovalPlan;
  let tampered: string | undefined;
  try {
    plan = JSON.parse(d.plan ?? '') as ApprovalPlan;
  } catch {
    plan = { runId: d.runId ?? '', procedure: d.procedure ?? '', environment: d.environment ?? '', targets: {}, items: [] };
    tampered = 'its plan is not JSON';
  }
  if (!tampered && (typeof plan !== 'object' || plan === null || !Array.isArray(plan.items))) tampered = 'its plan is malformed';
  if (!tampered && sha256Hex(d.plan ?? '') !== d.digest) tampered = 'its plan does not match its digest';
  if (!tampered && (plan.runId !== d.runId || plan.procedure !== d.procedure || plan.environment !== d.environment)) tampered = 'its plan names another run';
  const state = STATES.includes(d.state as ApprovalState) ? (d.state as ApprovalState) : 'pending';
  return {
    name,
    namespace: cm.metadata?.namespace ?? '',
    uid: cm.metadata?.uid,
    resourceVersion: cm.metadata?.resourceVersion,
    runId: d.runId ?? '',
    procedure: d.procedure ?? '',
    environment: d.environment ?? '',
    requester: d.requester ?? '',
    operator: d.operator ?? '',
    step: d.step ?? '',
    plan,
    digest: d.digest ?? '',
    requestedAt: d.requestedAt ?? '',
    expiresAt: d.expiresAt ?? '',
    state,
    ...(d.approver ? { approver: d.approver } : {}),
    ...(d.approvedDigest ? { approvedDigest: d.approvedDigest } : {}),
    ...(d.decidedAt ? { decidedAt: d.decidedAt } : {}),
    ...(d.reason ? { reason: d.reason } : {}),
    ...(tampered ? { tampered } : {}),
  };
}

/** The ConfigMap of a new request (state pending). */
export function requestConfigMap(o: {
  name: string;
  namespace: string;
  plan: ApprovalPlan;
  requester: string;
  operator: string;
  step: string;
  requestedAt: Date;
  timeoutMs: number;
}): ConfigMapLike {
  const text = planText(o.plan);
  return {
    metadata: {
      name: o.name,
      namespace: o.namespace,
      labels: { ...MANAGED_BY, [APPROVAL_LABEL]: 'request', [RUN_LABEL]: o.plan.runId },
    },
    data: {
      runId: o.plan.runId,
      procedure: o.plan.procedure,
      environment: o.plan.environment,
      requester: o.requester,
      operator: o.operator,
      step: o.step,
      plan: text,
      digest: sha256Hex(text),
      requestedAt: o.requestedAt.toISOString(),
      expiresAt: new Date(o.requestedAt.getTime() + o.timeoutMs).toISOString(),
      state: 'pending',
    },
  };
}

export function isExpired(r: Pick<ApprovalRequest, 'expiresAt'>, now: Date): boolean {
  const at = Date.parse(r.expiresAt);
  return Number.isNaN(at) || at <= now.getTime();
}

/** The plan as people read it: at the approver's prompt, and in `runbook approve`'s output. */
export function describeRequest(r: ApprovalRequest, now: Date): string[] {
  const t = r.plan.targets;
  const lines = [
    `${r.procedure} in ${r.environment} (run ${r.runId}), requested by ${r.requester} (${r.operator}) ${formatDuration(Math.max(0, now.getTime() - Date.parse(r.requestedAt)))} ago`,
    `state: ${r.state}${r.approver ? ` by ${r.approver}` : ''}${r.reason ? ` (${r.reason})` : ''}; expires ${r.expiresAt}`,
    'targets:',
  ];
  if (t.kubernetes)
    lines.push(`  kube ${t.kubernetes.server} context ${t.kubernetes.context || '(current)'} ns/${t.kubernetes.namespace} deploy/${t.kubernetes.deployment}`);
  if (t.aws) lines.push(`  aws ${t.aws.profile ? `${t.aws.profile}@` : ''}${t.aws.region}${t.aws.endpoint ? ` via ${t.aws.endpoint}` : ''}`);
  if (t.rds) lines.push(`  rds ${t.rds.instance}`);
  if (t.database) lines.push(`  db ${t.database}`);
  if (t.redis) lines.push(`  redis ${t.redis}`);
  lines.push('what will change:');
  for (const it of r.plan.items) {
    lines.push(`  ${it.title} (${it.step}):`);
    for (const l of it.lines ?? []) lines.push(`    • ${l}`);
    for (const ch of it.changes ?? [])
      lines.push(`    ${ch.action} ${ch.target}${ch.before !== undefined || ch.after !== undefined ? `: ${ch.before ?? '∅'} → ${ch.after ?? '∅'}` : ''}`);
  }
  lines.push(`digest: sha256:${r.digest}`);
  return lines;
}

// --- the requester's side: what the runner calls ---------------------------------------------------------

/** A second person's approval of one gate, as the runner journals it and re-checks it. */
export interface ApprovalGranted {
  request: string;
  requester: string;
  approver: string;
  digest: string;
  plan: ApprovalPlan;
  waitedMs: number;
}

/** A denial (or expiry) by the second person: exit 3, naming who and why. */
export class ApprovalDeclinedError extends GateError {
  constructor(
    message: string,
    readonly request: string,
    readonly requester: string,
    readonly approver?: string,
    hint?: string,
  ) {
    super(message, hint);
  }
}

/**
 * The second-person approval the runner asks for after the operator's own approval of a gate that
 * `approval.for` covers. Built by the command layer over the Kubernetes client (`approvalGate`); the
 * runner only sees this port.
 */
export interface ApprovalGate {
  readonly config: ApprovalConfig;
  /** Before the lock and any change: this identity may make and follow requests in the namespace (UsageError otherwise). */
  preflight(): Promise<void>;
  /**
   * Records the request for `items`, prints the approver's command, and waits (bounded by
   * `approval.timeout`, progress every ~10 s). Resolves once another user approved exactly this plan;
   * ApprovalDeclinedError on a denial or the timeout; UsageError when the namespace is not guarded;
   * the signal's reason on an interrupt (the request is marked cancelled first).
   */
  request(ask: { step: string; items: ApprovalItem[] }, signal: AbortSignal): Promise<ApprovalGranted>;
  /** Immediately before the step runs: the plan now (live targets, these items) must be the one approved. */
  recheck(granted: ApprovalGranted, items: ApprovalItem[]): Promise<void>;
}

export interface ApprovalGateOptions {
  config: ApprovalConfig;
  store: () => Promise<ApprovalStore>;
  runId: string;
  procedure: string;
  environment: string;
  /** user@host of this run. */
  operator: string;
  /** The targets now (recomputed for the re-check). */
  targets(): Promise<ApprovalTargets>;
  /** The plan is stored in the cluster: secrets never are. */
  redact<T>(value: T): T;
  info(message: string): void;
  progress(message: string): void;
  warn(message: string): void;
  /** Tells the decision (Slack, an Event); best effort, never fails the run. */
  announce?(decision: 'approved' | 'denied', message: string): Promise<unknown>;
  now(): Date;
  /** How often "still waiting" is said (default 10 s). */
  progressEveryMs?: number;
}

const GRACE_MS = 5000;

/** The requester's side of two-person approval, over the Kubernetes ConfigMap store. */
export function approvalGate(o: ApprovalGateOptions): ApprovalGate {
  const ns = o.config.namespace;
  const timeoutMs = durationMs(o.config.timeout) ?? 15 * 60_000;
  let made = 0;
  const plan = async (items: ApprovalItem[]): Promise<ApprovalPlan> =>
    o.redact({ runId: o.runId, procedure: o.procedure, environment: o.environment, targets: await o.targets(), items });
  const approveCmd = `runbook approve ${o.runId} -e ${o.environment}`;

  /** Requests in the namespace whose time is up (a killed requester's): deleted by the next request, only in the version read. */
  async function sweep(store: ApprovalStore): Promise<void> {
    let all: ConfigMapLike[];
    try {
      all = await store.listConfigMaps(ns, `${APPROVAL_LABEL}=request`);
    } catch {
      return;
    }
    for (const cm of all) {
      const r = readRequest(cm);
      if (!r || !isExpired(r, new Date(o.now().getTime() - GRACE_MS))) continue;
      await store.deleteConfigMap(ns, r.name, r.resourceVersion).catch(() => undefined);
    }
  }

  /** The namespace must refuse a requester's approval of its own request: checked with a dry run, every time. */
  async function checkGuard(store: ApprovalStore, name: string, requester: string, digest: string, resourceVersion?: string): Promise<void> {
    let accepted = false;
    try {
      await store.patchConfigMap(
        ns,
        name,
        { data: { state: 'approved', approver: requester, approvedDigest: digest, decidedAt: o.now().toISOString() } },
        { dryRun: true, resourceVersion },
      );
      accepted = true;
    } catch (err) {
      const status = httpStatusOf(err);
      if (status === undefined || status === 0 || status >= 500)
        throw new StepError(`could not check that approvals in namespace ${ns} are guarded: ${errorMessage(err)}; nothing was changed`);
    }
    if (accepted) {
      await store.deleteConfigMap(ns, name).catch(() => undefined);
      throw new UsageError(
        `approvals in namespace ${ns} are not guarded (apply the policy \`runbook rbac --approval\` prints); a requester could approve its own run; nothing was changed`,
        `runbook rbac --approval -e ${o.environment} | kubectl apply -f -   (as a cluster admin)`,
      );
    }
  }

  async function mark(store: ApprovalStore, name: string, state: 'cancelled' | 'expired', resourceVersion?: string): Promise<ApprovalRequest | null> {
    try {
      await store.patchConfigMap(ns, name, { data: { state, decidedAt: o.now().toISOString() } }, { resourceVersion });
      return null;
    } catch (err) {
      // Decided meanwhile: that decision stands.
      if (httpStatusOf(err) === 409) {
        const cm = await store.getConfigMap(ns, name).catch(() => null);
        return cm ? readRequest(cm) : null;
      }
      return null;
    }
  }

  return {
    config: o.config,
    async preflight() {
      const store = await o.store();
      const perms = REQUESTER_VERBS.map((verb): KubePermission => ({ verb, group: '', resource: 'configmaps', namespace: ns }));
      const missing = await store.cannotDo(perms, ns);
      if (missing.length > 0) {
        throw new UsageError(
          `two-person approval: not allowed to ${missing.map((p) => p.verb).join(', ')} configmaps in namespace ${ns} (as the kubeconfig's user on ${store.server}); nothing was changed`,
          `ask for the requester Role that \`runbook rbac --approval -e ${o.environment}\` prints`,
        );
      }
    },

    async request(ask, signal) {
      const store = await o.store();
      const me = await store.whoAmI();
      await sweep(store);
      const p = await plan(ask.items);
      const started = monotonicMs();
      const name = requestName(o.runId, ++made);
      let created: ConfigMapLike;
      try {
        created = await store.createConfigMap(
          ns,
          requestConfigMap({ name, namespace: ns, plan: p, requester: me.username, operator: o.operator, step: ask.step, requestedAt: o.now(), timeoutMs }),
        );
      } catch (err) {
        if (httpStatusOf(err) === 409) throw new StepError(`approval request ${ns}/${name} already exists (not made by this run); nothing was changed`);
        throw new StepError(`could not record the approval request in namespace ${ns}: ${errorMessage(err)}; nothing was changed`);
      }
      const mine = readRequest(created);
      if (!mine) throw new StepError(`approval request ${ns}/${name} came back without its data; nothing was changed`);
      await checkGuard(store, name, me.username, mine.digest, mine.resourceVersion);
      o.info(`      waiting for a second approver (${me.username} cannot approve its own run): ${approveCmd}`);
      o.info(`      (or deny: runbook deny ${o.runId} -e ${o.environment} --reason TEXT); request ${ns}/${name}, digest sha256:${mine.digest.slice(0, 12)}…`);

      const stop = new AbortController();
      const both = AbortSignal.any([signal, stop.signal]);
      let last: ApprovalRequest = mine;
      let gone = false;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        stop.abort();
      }, timeoutMs);
      const every = o.progressEveryMs ?? 10_000;
      const ticker = setInterval(
        () => o.progress(`still waiting for a second approver, ${formatDuration(monotonicMs() - started)} of ${formatDuration(timeoutMs)}: ${approveCmd}`),
        every,
      );
      try {
        await store.watchConfigMap(
          ns,
          name,
          (ev) => {
            if (ev.type === 'DELETED') {
              gone = true;
              return true;
            }
            if (ev.type !== 'ADDED' && ev.type !== 'MODIFIED') return;
            const r = readRequest(ev.object);
            // Not the object this run made (deleted and made again by someone): it counts for nothing.
            if (!r || (mine.uid && r.uid !== mine.uid)) {
              gone = true;
              return true;
            }
            last = r;
            return r.state !== 'pending';
          },
          both,
        );
      } catch (err) {
        if (!both.aborted) {
          if (httpStatusOf(err) === 404) gone = true;
          else throw new StepError(`lost track of approval request ${ns}/${name}: ${errorMessage(err)}; nothing was changed`);
        }
      } finally {
        clearTimeout(timer);
        clearInterval(ticker);
      }
      const waitedMs = Math.round(monotonicMs() - started);
      if (signal.aborted) {
        // Best effort, and bounded: an interrupt is never held up by an API server that stopped answering.
        await Promise.race([mark(store, name, 'cancelled', last.resourceVersion), new Promise((r) => setTimeout(r, 3000).unref())]);
        throw signal.reason;
      }
      if (gone) throw new ApprovalDeclinedError(`approval request ${ns}/${name} was deleted or replaced while waiting; nothing was changed`, name, me.username);
      if (timedOut && last.state === 'pending') {
        const decided = await mark(store, name, 'expired', last.resourceVersion);
        if (decided && decided.state !== 'pending') last = decided;
        else
          throw new ApprovalDeclinedError(
            `no second approver within ${o.config.timeout} (${ns}/${name} expired); nothing was changed`,
            name,
            me.username,
            undefined,
            `ask someone to run \`${approveCmd}\` while the run waits (approval.timeout: ${o.config.timeout})`,
          );
      }
      const decidedBy = last.approver ?? '(unknown)';
      if (last.state === 'denied') {
        await o
          .announce?.(
            'denied',
            `${decidedBy} denied ${me.username}'s ${o.procedure} in ${o.environment} (run ${o.runId})${last.reason ? `: ${last.reason}` : ''}`,
          )
          .catch(() => undefined);
        throw new ApprovalDeclinedError(
          `denied by ${decidedBy}${last.reason ? `: ${last.reason}` : ''}; nothing was changed`,
          name,
          me.username,
          last.approver,
        );
      }
      if (last.state !== 'approved')
        throw new ApprovalDeclinedError(`approval request ${ns}/${name} was ${last.state}; nothing was changed`, name, me.username);
      // The server's policy enforces these; checked here too, so an unguarded or tampered request never counts.
      if (!last.approver || last.approver === me.username)
        throw new ApprovalDeclinedError(
          `approval request ${ns}/${name} was approved by its own requester (${me.username}); it does not count`,
          name,
          me.username,
        );
      if (last.approvedDigest !== mine.digest || last.digest !== mine.digest || last.tampered)
        throw new ApprovalDeclinedError(
          `${decidedBy} approved a different plan than this run's (digest ${last.approvedDigest?.slice(0, 12) ?? 'none'}…, ours ${mine.digest.slice(0, 12)}…); nothing was changed`,
          name,
          me.username,
          last.approver,
        );
      o.info(`      approved by ${decidedBy} after ${formatDuration(waitedMs)}`);
      await o.announce?.('approved', `${decidedBy} approved ${me.username}'s ${o.procedure} in ${o.environment} (run ${o.runId})`).catch(() => undefined);
      return { request: name, requester: me.username, approver: decidedBy, digest: mine.digest, plan: p, waitedMs };
    },

    async recheck(granted, items) {
      const now = await plan(items);
      if (planDigest(now) === granted.digest) return;
      const what = planDifferences(granted.plan, now);
      throw new ApprovalDeclinedError(
        `the plan changed since ${granted.approver} approved it (${what.join('; ') || 'its digest differs'}); nothing was changed`,
        granted.request,
        granted.requester,
        granted.approver,
        'run it again: the new plan needs its own approval',
      );
    },
  };
}

// --- the approver's side: runbook approve / deny --------------------------------------------------------

/** The pending request of a run (the newest), or why there is none to decide. */
export async function findRequest(store: ApprovalStore, namespace: string, runId: string): Promise<ApprovalRequest> {
  const all = (await store.listConfigMaps(namespace, `${APPROVAL_LABEL}=request,${RUN_LABEL}=${runId}`))
    .map(readRequest)
    .filter((r): r is ApprovalRequest => r !== null && r.runId === runId)
    .sort((a, b) => (a.requestedAt < b.requestedAt ? 1 : a.requestedAt > b.requestedAt ? -1 : 0));
  if (all.length === 0)
    throw new GateError(`no approval request for run ${runId} in namespace ${namespace}`, 'check the run id and -e (the requester prints the exact command)');
  return all.find((r) => r.state === 'pending') ?? all[0];
}

/** Why this request cannot be decided now (null: it can). */
export function undecidable(r: ApprovalRequest, now: Date): string | null {
  if (r.tampered) return `the request ${r.name} cannot be trusted: ${r.tampered}`;
  if (r.state !== 'pending')
    return `run ${r.runId}'s request was already ${r.state}${r.approver ? ` by ${r.approver}` : ''}${r.decidedAt ? ` at ${r.decidedAt}` : ''}`;
  if (isExpired(r, now)) return `run ${r.runId}'s request expired at ${r.expiresAt} (its run is no longer waiting)`;
  return null;
}

/**
 * Checks that `me` may decide `r` (not its requester; the approve permission), then records the
 * decision in the version read (409: it changed meanwhile). Throws GateError (exit 3) for a request that
 * cannot be decided or an identity that must not, UsageError (exit 2) for a missing RBAC rule.
 */
export async function decideRequest(
  store: ApprovalStore,
  r: ApprovalRequest,
  me: { username: string },
  decision: { state: 'approved' | 'denied'; reason?: string; now: Date; confirm?: () => Promise<boolean> },
): Promise<ApprovalRequest> {
  const why = undecidable(r, decision.now);
  if (why) throw new GateError(why);
  if (me.username === r.requester)
    throw new GateError(`you (${me.username}) requested this run; another person must ${decision.state === 'approved' ? 'approve' : 'deny'} it`);
  const missing = await store.cannotDo([{ ...APPROVE_PERMISSION, namespace: r.namespace }], r.namespace);
  if (missing.length > 0)
    throw new UsageError(
      `${me.username} may not approve runs here: no "approve" permission on approvals.runbook.dev in namespace ${r.namespace}; nothing was changed`,
      `ask for the approver Role that \`runbook rbac --approval\` prints`,
    );
  if (decision.confirm && !(await decision.confirm())) throw new GateError(`not ${decision.state}: declined at the prompt`);
  const data: Record<string, string> = { state: decision.state, approver: me.username, decidedAt: decision.now.toISOString() };
  if (decision.state === 'approved') data.approvedDigest = r.digest;
  if (decision.reason) data.reason = decision.reason;
  try {
    const cm = await store.patchConfigMap(r.namespace, r.name, { data }, { resourceVersion: r.resourceVersion });
    return readRequest(cm) ?? { ...r, ...data, state: decision.state };
  } catch (err) {
    const status = httpStatusOf(err);
    if (status === 409)
      throw new GateError(`run ${r.runId}'s request changed while you looked at it; nothing was recorded`, 'run the command again to see it as it is now');
    if (status === 403 || status === 422 || status === 400)
      throw new GateError(
        `the API server refused the decision: ${errorMessage(err)}`,
        'the approvals policy (`runbook rbac --approval`) decides who may approve',
      );
    throw new StepError(`could not record the decision: ${errorMessage(err)}`);
  }
}
