import type { V1Deployment } from '../../clients/kube.js';
import { StepError } from '../../core/errors.js';
import { parseDuration, formatDuration } from '../../core/duration.js';
import type { Step, StepContext } from '../../core/procedure.js';

export interface RolloutState {
  done: boolean;
  message: string;
  failed?: boolean;
}

/** The same completeness rules as `kubectl rollout status`. */
export function rolloutStatus(d: V1Deployment): RolloutState {
  const spec = d.spec?.replicas ?? 1;
  const st = d.status ?? {};
  const generation = d.metadata?.generation ?? 0;
  if ((st.observedGeneration ?? 0) < generation) return { done: false, message: 'waiting for the deployment spec update to be observed' };
  const progressing = st.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return { done: false, failed: true, message: `deployment exceeded its progress deadline: ${progressing.message ?? ''}`.trim() };
  }
  const updated = st.updatedReplicas ?? 0;
  const replicas = st.replicas ?? 0;
  const available = st.availableReplicas ?? 0;
  if (updated < spec) return { done: false, message: `${updated} of ${spec} updated replicas` };
  if (replicas > updated) return { done: false, message: `${replicas - updated} old replicas pending termination` };
  if (available < updated) return { done: false, message: `${available} of ${updated} updated replicas available` };
  return { done: true, message: `${updated} of ${spec} updated, ${available} available` };
}

/** Watches the deployment (no polling) until the rollout completes, fails or times out. */
export async function waitForRollout(ctx: StepContext<unknown>, name: string, timeoutMs: number): Promise<{ replicas: number; available: number; waitedMs: number }> {
  const kube = await ctx.clients.kube();
  const t0 = performance.now();
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([ctx.signal, timeout]);
  let last = '';
  let final: V1Deployment | undefined;
  let failure: string | undefined;
  await kube.watchDeployment(
    name,
    (ev) => {
      if (ev.type === 'DELETED') {
        failure = `deployment ${name} was deleted during the rollout`;
        return true;
      }
      const s = rolloutStatus(ev.object);
      if (s.message !== last) {
        last = s.message;
        ctx.log(s.message);
      }
      if (s.failed) {
        failure = s.message;
        return true;
      }
      if (s.done) {
        final = ev.object;
        return true;
      }
      return false;
    },
    signal,
  );
  if (failure) throw new StepError(`rollout of deployment/${name} failed: ${failure}`, `kubectl rollout status deployment/${name} -n ${kube.namespace}`);
  if (!final) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw new StepError(`rollout of deployment/${name} not complete after ${formatDuration(timeoutMs)}: ${last}`, 'check the new pods with: runbook app scaling; raise the wait with --rollout-timeout');
  }
  return { replicas: final.spec?.replicas ?? 0, available: final.status?.availableReplicas ?? 0, waitedMs: Math.round(performance.now() - t0) };
}

export function rolloutTimeout(ctx: StepContext<unknown>): number {
  const p = ctx.params as { rolloutTimeout?: number };
  return p.rolloutTimeout ?? parseDuration(ctx.env.config.rollout.timeout);
}

/** Step: wait for the rollout of the environment's deployment. */
export function watchRolloutStep<P>(): Step<P> {
  return {
    id: 'rollout',
    title: 'Wait for the rollout to complete',
    why: 'A change is not done until every new pod is ready and available; watching (not polling) reports it the moment it is.',
    risk: 'read',
    followsWrite: true,
    equivalent: (_p, env) => `kubectl rollout status deployment/${env.config.kubernetes?.deployment} -n ${env.config.kubernetes?.namespace} --timeout=${env.config.rollout.timeout}`,
    plan: async (ctx) => [{ action: 'wait for rollout of', target: `deployment/${ctx.env.config.kubernetes!.deployment}`, after: `complete within ${formatDuration(rolloutTimeout(ctx as StepContext<unknown>))}` }],
    run: (ctx) => waitForRollout(ctx as StepContext<unknown>, ctx.env.config.kubernetes!.deployment, rolloutTimeout(ctx as StepContext<unknown>)),
  };
}
