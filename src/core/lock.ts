import type { KubeClient, LeaseRecord } from '../clients/kube.js';
import { KubeApiError } from '../clients/kube.js';
import { LockHeldError, StepError } from './errors.js';

export interface LockHolder {
  operator: string;
  runId: string;
}

export interface HeldLock {
  name: string;
  /** Aborted (with a StepError) once the lease can no longer be renewed or another run took it. */
  lost: AbortSignal;
  release(): Promise<void>;
}

const DURATION_S = 60;

/** Lease names are RFC 1123 labels: lowercase, digits, dashes, at most 63 characters. */
export function leaseName(procedure: string, target: string): string {
  const raw = `runbook-${procedure}-${target}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+/g, '-');
  return raw.slice(0, 63).replace(/-+$/, '');
}

function holderIdentity(h: LockHolder): string {
  return `${h.operator} run ${h.runId}`;
}

function expired(l: LeaseRecord, now: Date): boolean {
  const last = l.renewTime ?? l.acquireTime;
  if (!last) return true;
  return last.getTime() + (l.durationSeconds ?? DURATION_S) * 1000 < now.getTime();
}

const isConflict = (err: unknown) => err instanceof KubeApiError && (err.status === 409 || err.status === 422);

export interface LockOptions {
  /** Renewal period in ms (default a third of the lease's duration). */
  renewEveryMs?: number;
}

/**
 * A coordination.k8s.io Lease named after the procedure and its target, renewed while the run lasts,
 * so two operators cannot run the same procedure on the same target at once. Every write carries the
 * resourceVersion it read (optimistic concurrency), so two runs racing for an expired lease cannot
 * both win. A crashed run's lease expires after its duration; a run whose renewals fail until the
 * lease would have expired, or that finds another holder, is told through `lost`.
 */
export async function acquireLock(kube: KubeClient, name: string, holder: LockHolder, now: () => Date, opts: LockOptions = {}): Promise<HeldLock> {
  const identity = holderIdentity(holder);
  const fresh = (): LeaseRecord => ({ name, holder: identity, durationSeconds: DURATION_S, acquireTime: now(), renewTime: now(), labels: { 'app.kubernetes.io/managed-by': 'runbook' } });
  let current: LeaseRecord;
  try {
    const existing = await kube.getLease(name);
    if (!existing) {
      current = await kube.createLease(fresh());
    } else if (existing.holder && existing.holder !== identity && !expired(existing, now())) {
      throw held(name, existing.holder, existing.acquireTime);
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
  const timer = setInterval(() => {
    if (!inflight) inflight = renew().finally(() => (inflight = undefined));
  }, opts.renewEveryMs ?? (DURATION_S * 1000) / 3);
  timer.unref();
  return {
    name,
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

function held(name: string, holder: string, since?: Date): LockHeldError {
  const when = since ? ` since ${since.toISOString()}` : '';
  return new LockHeldError(`${name} is held by ${holder}${when}`, 'wait for that run to finish, or ask its operator; a crashed run\'s lock expires within a minute');
}
