import type { KubeClient, V1Deployment } from '../../clients/kube.js';
import { ownedReplicaSets, selectorOf } from './pods.js';
import { StepError } from '../../core/errors.js';
import { parseDuration, formatDuration } from '../../core/duration.js';
import { sleep } from '../../core/sleep.js';
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
  // A paused rollout never finishes by waiting; kubectl waits forever, an operator at 3 a.m. should not.
  if (d.spec?.paused)
    return {
      done: false,
      failed: true,
      message: `the deployment is paused (resume it with: kubectl rollout resume deployment/${d.metadata?.name} -n ${d.metadata?.namespace})`,
    };
  const replicaFailure = st.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  if (replicaFailure) return { done: false, failed: true, message: `pods cannot be created: ${replicaFailure.message ?? replicaFailure.reason ?? ''}`.trim() };
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

/** Waiting reasons of a container that no amount of waiting fixes: the kubelet is already backing off. */
const STUCK = new Set(['CrashLoopBackOff', 'ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']);

/** The first new-revision pod stuck in a back-off, as one line, or undefined. */
export async function stuckNewPod(kube: KubeClient, d: V1Deployment): Promise<string | undefined> {
  const sets = await ownedReplicaSets(kube, d);
  const hash = sets[sets.length - 1]?.metadata?.labels?.['pod-template-hash'];
  if (!hash) return undefined;
  const pods = await kube.listPods(`${selectorOf(d)},pod-template-hash=${hash}`);
  for (const p of pods) {
    if (p.metadata?.deletionTimestamp) continue;
    for (const c of p.status?.containerStatuses ?? []) {
      const w = c.state?.waiting;
      if (w?.reason && STUCK.has(w.reason)) return `pod ${p.metadata?.name} container ${c.name}: ${w.reason}${w.message ? ` (${w.message})` : ''}`;
    }
  }
  return undefined;
}

/**
 * Watches the deployment (no polling) until the rollout completes, fails or times out. A rollout
 * that cannot finish fails at once rather than at the timeout: paused, pods that cannot be created
 * (ReplicaFailure, e.g. a ResourceQuota), or new pods in CrashLoopBackOff or ImagePullBackOff
 * (checked each second while the rollout is not done).
 */
export interface RolloutDone {
  replicas: number;
  available: number;
  waitedMs: number;
}

export async function waitForRollout<P>(ctx: StepContext<P>, name: string, timeoutMs: number): Promise<RolloutDone> {
  const kube = await ctx.clients.kube();
  const t0 = performance.now();
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([ctx.signal, timeout]);
  let last = '';
  let final: V1Deployment | undefined;
  let failure: string | undefined;
  let latest: V1Deployment | undefined;
  const stop = new AbortController();
  const watchSignal = AbortSignal.any([signal, stop.signal]);
  const podCheck = (async () => {
    while (!watchSignal.aborted) {
      // Ends with the watch: an unref'd timer awaited here let the process exit (code 13) mid-run
      // once nothing else held the event loop (stdout closed), and held every finished wait up to 1 s.
      await sleep(1000, watchSignal).catch(() => undefined);
      if (watchSignal.aborted || !latest) continue;
      const stuck = await stuckNewPod(kube, latest).catch(() => undefined);
      if (stuck && !watchSignal.aborted) {
        failure = `the new pods cannot start: ${stuck}`;
        stop.abort();
      }
    }
  })();
  await kube.watchDeployment(
    name,
    (ev) => {
      if (ev.type === 'DELETED') {
        failure = `deployment ${name} was deleted during the rollout`;
        return true;
      }
      latest = ev.object;
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
    watchSignal,
  );
  stop.abort();
  await podCheck;
  if (failure) throw new StepError(`rollout of deployment/${name} failed: ${failure}`, `kubectl rollout status deployment/${name} -n ${kube.namespace}`);
  if (!final) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw new StepError(
      `rollout of deployment/${name} not complete after ${formatDuration(timeoutMs)}: ${last}`,
      'check the new pods with: runbook app scaling; raise the wait with --rollout-timeout',
    );
  }
  return { replicas: final.spec?.replicas ?? 0, available: final.status?.availableReplicas ?? 0, waitedMs: Math.round(performance.now() - t0) };
}

/** The procedure's --rollout-timeout where it has one, else the environment's rollout.timeout. */
export function rolloutTimeout<P>(ctx: Pick<StepContext<P>, 'params' | 'env'>): number {
  const given = ctx.params && typeof ctx.params === 'object' && 'rolloutTimeout' in ctx.params ? ctx.params.rolloutTimeout : undefined;
  return typeof given === 'number' ? given : parseDuration(ctx.env.config.rollout.timeout);
}

/** Step: wait for the rollout of the environment's deployment. */
export function watchRolloutStep<P>(): Step<P, RolloutDone> {
  return {
    id: 'rollout',
    title: 'Wait for the rollout to complete',
    why: 'A change is not done until every new pod is ready and available; watching (not polling) reports it the moment it is.',
    risk: 'read',
    followsWrite: true,
    equivalent: (_p, env) =>
      `kubectl rollout status deployment/${env.config.kubernetes?.deployment} -n ${env.config.kubernetes?.namespace} --timeout=${env.config.rollout.timeout}`,
    plan: async (ctx) => [
      {
        action: 'wait for rollout of',
        target: `deployment/${ctx.env.config.kubernetes!.deployment}`,
        after: `complete within ${formatDuration(rolloutTimeout(ctx))}`,
      },
    ],
    run: (ctx) => waitForRollout(ctx, ctx.env.config.kubernetes!.deployment, rolloutTimeout(ctx)),
    postcondition: {
      describe: 'the rollout is complete',
      // A read: waiting again is always safe.
      async check(ctx) {
        const name = ctx.env.config.kubernetes!.deployment;
        const s = rolloutStatus(await (await ctx.clients.kube()).getDeployment(name));
        return s.done ? { holds: true } : { holds: false, found: `deployment/${name}: ${s.message}` };
      },
    },
  };
}
