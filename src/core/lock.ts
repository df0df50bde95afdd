import type { KubeClient } from '../clients/kube.js';
import { KubeApiError } from '../clients/kube.js';
import { LockHeldError, StepError } from './errors.js';

export interface LockHolder {
  operator: string;
  runId: string;
}

export interface HeldLock {
  name: string;
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

function expired(spec: { renewTime?: Date | string; acquireTime?: Date | string; leaseDurationSeconds?: number }, now: Date): boolean {
  const last = spec.renewTime ?? spec.acquireTime;
  if (!last) return true;
  const at = new Date(last).getTime();
  return at + (spec.leaseDurationSeconds ?? DURATION_S) * 1000 < now.getTime();
}

/**
 * A coordination.k8s.io Lease named after the procedure and its target, renewed while the run lasts,
 * so two operators cannot run the same procedure on the same target at once. A crashed run's lease
 * expires after its duration.
 */
export async function acquireLock(kube: KubeClient, name: string, holder: LockHolder, now: () => Date): Promise<HeldLock> {
  const identity = holderIdentity(holder);
  const spec = () => ({
    holderIdentity: identity,
    leaseDurationSeconds: DURATION_S,
    acquireTime: now() as unknown as Date,
    renewTime: now() as unknown as Date,
  });
  const existing = await kube.getLease(name);
  try {
    if (!existing) {
      await kube.createLease({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'runbook' } }, spec: spec() });
    } else if (existing.spec?.holderIdentity && existing.spec.holderIdentity !== identity && !expired(existing.spec, now())) {
      throw held(name, existing.spec.holderIdentity, existing.spec.acquireTime);
    } else {
      await kube.replaceLease(name, { ...existing, spec: spec() });
    }
  } catch (err) {
    if (err instanceof KubeApiError && (err.status === 409 || err.status === 422)) {
      const now2 = await kube.getLease(name);
      throw held(name, now2?.spec?.holderIdentity ?? 'another run', now2?.spec?.acquireTime);
    }
    if (err instanceof LockHeldError) throw err;
    throw new StepError(`could not take the lock ${name}: ${(err as Error).message}`);
  }

  let stopped = false;
  const renew = async () => {
    if (stopped) return;
    try {
      const cur = await kube.getLease(name);
      if (cur && cur.spec?.holderIdentity === identity) {
        await kube.replaceLease(name, { ...cur, spec: { ...cur.spec, renewTime: now() as unknown as Date } });
      }
    } catch {
      // A missed renewal is retried at the next tick; the lease lasts three ticks.
    }
  };
  const timer = setInterval(() => void renew(), (DURATION_S * 1000) / 3);
  timer.unref();
  return {
    name,
    async release() {
      stopped = true;
      clearInterval(timer);
      try {
        const cur = await kube.getLease(name);
        if (cur && cur.spec?.holderIdentity === identity) await kube.deleteLease(name);
      } catch {
        // It expires on its own.
      }
    },
  };
}

function held(name: string, holder: string, since?: Date | string): LockHeldError {
  const when = since ? ` since ${new Date(since).toISOString()}` : '';
  return new LockHeldError(`${name} is held by ${holder}${when}`, 'wait for that run to finish, or ask its operator; a crashed run\'s lock expires within a minute');
}
