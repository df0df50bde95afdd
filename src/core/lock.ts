import { httpStatusOf } from './errors.js';
import { sha256Hex } from './hash.js';
import type { ResolvedEnvironment } from './config.js';
import { LockHeldError, StepError } from './errors.js';

export interface LockHolder {
  operator: string;
  runId: string;
  /** A takeover: the run (operator and id) this one continues for someone else, named in the Lease's holder. */
  takingOver?: { operator: string; runId: string };
}

export interface HeldLock {
  name: string;
  /** The Leases held (one per target). */
  leases: string[];
  /** Aborted (with a StepError) once the lease can no longer be renewed or another run took it. */
  lost: AbortSignal;
  release(): Promise<void>;
}

const DURATION_S = 60;

/**
 * A coordination.k8s.io Lease as the lock sees it. Times are Dates here; the adapter writes them
 * as MicroTime (six fractional digits), which is what a real API server accepts.
 */
export interface LeaseRecord {
  name: string;
  holder?: string;
  acquireTime?: Date;
  renewTime?: Date;
  durationSeconds?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
}

/** The Lease calls the lock makes (the Kubernetes client provides them). Errors carry the HTTP `status`. */
export interface LeaseStore {
  getLease(name: string): Promise<LeaseRecord | null>;
  createLease(lease: LeaseRecord): Promise<LeaseRecord>;
  updateLease(lease: LeaseRecord & { resourceVersion: string }): Promise<LeaseRecord>;
  deleteLease(name: string, resourceVersion: string): Promise<void>;
}

/**
 * The things procedures change, as lock targets. A Lease is named by its target, so every procedure
 * that changes the deployment (app scale, db restart's scale-down, outage recover …) takes the same one.
 */
export const lockTargets = {
  deployment: (env: ResolvedEnvironment) => `deployment/${env.config.kubernetes?.deployment ?? env.name}`,
  rds: (env: ResolvedEnvironment, instance = env.config.rds?.instance ?? env.name) => `rds/${instance}`,
  /**
   * The environment's primary PostgreSQL. Without an rds.url it is the database the RDS instance serves
   * (config-schema), so it is the RDS instance's target: `db kill-idle` and `db restart` exclude each other.
   */
  postgres: (env: ResolvedEnvironment) => (env.config.rds && !env.config.rds.url ? lockTargets.rds(env) : `postgres/${env.name}`),
  redis: (env: ResolvedEnvironment) => `redis/${env.name}`,
  node: (name: string) => `node/${name}`,
  route53: (zoneId: string) => `route53/${zoneId}`,
  ecs: (cluster: string, service: string) => `ecs/${cluster}/${service}`,
};

/**
 * Lease names are RFC 1123 labels: lowercase, digits, dashes, at most 63 characters. A target that does
 * not fit as it is gets a short hash of itself, so two targets never share a lease by truncation.
 */
export function leaseName(target: string): string {
  const raw = `runbook-${target}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/-+$/, '');
  const exact = raw === `runbook-${target}`.replace(/\//g, '-');
  if (exact && raw.length <= 63) return raw;
  const hash = sha256Hex(target).slice(0, 8);
  return `${raw.slice(0, 63 - 9).replace(/-+$/, '')}-${hash}`;
}

function holderIdentity(h: LockHolder): string {
  return `${h.operator} run ${h.runId}${h.takingOver ? ` (taking over ${h.takingOver.operator} run ${h.takingOver.runId})` : ''}`;
}

/** Whether a Lease's holder is this run (as `acquireLock` writes it, takeover note or not). */
export function heldBy(holder: string | undefined, run: { operator: string; runId: string }): boolean {
  return holder !== undefined && (holder === `${run.operator} run ${run.runId}` || holder.startsWith(`${run.operator} run ${run.runId} (`));
}

function expired(l: LeaseRecord, now: Date): boolean {
  const last = l.renewTime ?? l.acquireTime;
  if (!last) return true;
  return last.getTime() + (l.durationSeconds ?? DURATION_S) * 1000 < now.getTime();
}

const isConflict = (err: unknown) => httpStatusOf(err) === 409 || httpStatusOf(err) === 422;

export interface LockOptions {
  /** Renewal period in ms (default a third of the lease's duration). */
  renewEveryMs?: number;
  /**
   * The run this one resumes: a lease that run (same operator, same run id) still holds is taken over
   * at once — it is this operator's own crashed run — instead of refused until it expires.
   */
  takeOver?: LockHolder;
}

/**
 * A coordination.k8s.io Lease named after one target (see `leaseName`), renewed while the run lasts,
 * so two runs cannot change the same thing at once. Every write carries the
 * resourceVersion it read (optimistic concurrency), so two runs racing for an expired lease cannot
 * both win. A crashed run's lease expires after its duration; a run whose renewals fail until the
 * lease would have expired, or that finds another holder, is told through `lost`.
 */
export async function acquireLock(kube: LeaseStore, name: string, holder: LockHolder, now: () => Date, opts: LockOptions = {}): Promise<HeldLock> {
  const identity = holderIdentity(holder);
  const fresh = (): LeaseRecord => ({
    name,
    holder: identity,
    durationSeconds: DURATION_S,
    acquireTime: now(),
    renewTime: now(),
    labels: { 'app.kubernetes.io/managed-by': 'runbook' },
  });
  let current: LeaseRecord;
  try {
    const existing = await kube.getLease(name);
    const ours = (h?: string) => h === identity || (opts.takeOver !== undefined && heldBy(h, opts.takeOver));
    if (!existing) {
      current = await kube.createLease(fresh());
    } else if (existing.holder && !ours(existing.holder) && !expired(existing, now())) {
      throw held(name, existing.holder, existing.acquireTime);
    } else if (existing.holder && !ours(existing.holder)) {
      // Expired (its run crashed): deleted, only in the version read, then taken afresh; a run racing
      // for it too gets a conflict on one of the two writes and exit 6.
      await kube.deleteLease(name, existing.resourceVersion ?? '').catch((err) => {
        if (httpStatusOf(err) !== 404) throw err;
      });
      current = await kube.createLease(fresh());
    } else {
      current = await kube.updateLease({ ...fresh(), resourceVersion: existing.resourceVersion ?? '' });
    }
  } catch (err) {
    if (err instanceof LockHeldError) throw err;
    if (isConflict(err)) {
      const winner = await kube.getLease(name).catch(() => null);
      throw held(name, winner?.holder ?? 'another run', winner?.acquireTime);
    }
    throw new StepError(`could not take the lock ${name}: ${(err as Error).message}`);
  }

  const lostCtl = new AbortController();
  let lastRenewed = now().getTime();
  let stopped = false;
  let inflight: Promise<void> | undefined;
  const lose = (why: string) => {
    if (lostCtl.signal.aborted) return;
    stopped = true;
    clearInterval(timer);
    lostCtl.abort(new StepError(`lost the lock ${name}: ${why}`, 'another operator may now run this procedure on the same target; check before going on'));
  };
  const renew = async () => {
    if (stopped) return;
    try {
      current = await kube.updateLease({ ...current, holder: identity, renewTime: now(), resourceVersion: current.resourceVersion ?? '' });
      lastRenewed = now().getTime();
    } catch (err) {
      if (isConflict(err)) {
        const cur = await kube.getLease(name).catch(() => null);
        if (cur && cur.holder === identity) {
          current = cur; // our own earlier write landed; retry with its version next tick
          return;
        }
        return lose(cur ? `${cur.holder} holds it now` : 'it was deleted');
      }
      // A failed renewal is retried at the next tick; the lease lasts three ticks.
      if (now().getTime() - lastRenewed > (DURATION_S * 1000 * 2) / 3) lose(`renewals keep failing (${(err as Error).message})`);
    }
  };
  const timer = setInterval(
    () => {
      if (!inflight) inflight = renew().finally(() => (inflight = undefined));
    },
    opts.renewEveryMs ?? (DURATION_S * 1000) / 3,
  );
  timer.unref();
  return {
    name,
    leases: [name],
    lost: lostCtl.signal,
    async release() {
      stopped = true;
      clearInterval(timer);
      await inflight;
      if (lostCtl.signal.aborted) return;
      try {
        await kube.deleteLease(name, current.resourceVersion ?? '');
      } catch {
        // Another version (a renewal in flight) or gone already: it expires on its own.
      }
    },
  };
}

/**
 * One lease per target, taken in a stable (sorted) order so two runs needing overlapping targets cannot
 * deadlock, all or nothing: when one is held elsewhere, those already taken are released before exit 6.
 */
export async function acquireLocks(
  kube: LeaseStore,
  targets: readonly string[],
  holder: LockHolder,
  now: () => Date,
  opts: LockOptions = {},
): Promise<HeldLock> {
  const names = [...new Set(targets.map(leaseName))].sort();
  const taken: HeldLock[] = [];
  try {
    for (const n of names) taken.push(await acquireLock(kube, n, holder, now, opts));
  } catch (err) {
    for (const l of taken.reverse()) await l.release();
    throw err;
  }
  return {
    name: names.join(', '),
    leases: names,
    lost: AbortSignal.any(taken.map((l) => l.lost)),
    async release() {
      for (const l of [...taken].reverse()) await l.release();
    },
  };
}

function held(name: string, holder: string, since?: Date): LockHeldError {
  const when = since ? ` since ${since.toISOString()}` : '';
  return new LockHeldError(
    `${name} is held by ${holder}${when}`,
    "wait for that run to finish, or ask its operator; a crashed run's lock expires within a minute (your own crashed run: `runbook resume <run-id>` takes it over; someone else's: `runbook resume <run-id> --takeover` once it expired or its operator ran `runbook release <run-id>`)",
  );
}
