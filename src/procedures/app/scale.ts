import { lockTargets } from '../../core/lock.js';
import { UsageError } from '../../core/errors.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';

export interface AppScaleParams {
  replicas: number;
  rolloutTimeout?: number;
}

const step = stepFor<AppScaleParams>();

const current = step({
  id: 'current',
  title: 'Record the current replica count',
  why: 'The count is recorded so that a failure can put it back exactly (the seed hard-codes counts).',
  risk: 'read',
  equivalent: (_p, env) => `kubectl get deployment/${deploymentName(env)} -n ${ns(env)} -o jsonpath='{.spec.replicas}'`,
  async run(ctx) {
    const kube = await ctx.clients.kube();
    const d = await kube.getDeployment(deploymentName(ctx.env));
    const hpa = (await kube.listHpas()).find((h) => h.spec?.scaleTargetRef?.name === deploymentName(ctx.env));
    if (hpa)
      ctx.reporter.warn(
        `HPA ${hpa.metadata?.name} manages this deployment (min ${hpa.spec?.minReplicas ?? 1}, max ${hpa.spec?.maxReplicas}); it may change the count again`,
      );
    return { replicas: d.spec?.replicas ?? 0, hpa: hpa?.metadata?.name ?? null };
  },
  postcondition: {
    describe: 'the recorded count is the one to put back (the deployment is still at it, or at the count this run set)',
    // A read: reading again is safe, and a failed rollout must go back to what is there now.
    async check(ctx, r) {
      const live = await liveReplicas(ctx);
      if (live === r.replicas || (ctx.find(scale) && live === ctx.params.replicas)) return { holds: true };
      return { holds: false, found: `deployment/${deploymentName(ctx.env)} has ${live} replica(s) now, ${r.replicas} were recorded` };
    },
  },
});

const scale = step({
  id: 'scale',
  title: 'Scale the deployment',
  why: 'Sets spec.replicas through the scale subresource, as `kubectl scale` does.',
  risk: (p) => (p.replicas === 0 ? 'destructive' : 'write'),
  equivalent: (p, env) => `kubectl scale deployment/${deploymentName(env)} --replicas=${p.replicas} -n ${ns(env)}`,
  async plan(ctx) {
    const from = ctx.find(current)?.replicas;
    if (from === ctx.params.replicas) return [];
    const kube = await ctx.clients.kube();
    await kube.scaleDeployment(deploymentName(ctx.env), ctx.params.replicas, { dryRun: true });
    return [
      {
        action: 'scale',
        target: `deployment/${deploymentName(ctx.env)}`,
        before: from === undefined ? undefined : String(from),
        after: String(ctx.params.replicas),
        validated: true,
      },
    ];
  },
  async run(ctx) {
    const kube = await ctx.clients.kube();
    const from = ctx.get(current).replicas;
    await kube.scaleDeployment(deploymentName(ctx.env), ctx.params.replicas);
    return { from, to: ctx.params.replicas };
  },
  async undo(ctx, data) {
    const kube = await ctx.clients.kube();
    await kube.scaleDeployment(deploymentName(ctx.env), data.from);
  },
  undoByHand: (ctx, data) => `kubectl scale deployment/${deploymentName(ctx.env)} --replicas=${data.from} -n ${ns(ctx.env)}`,
  postcondition: {
    describe: 'the deployment is at the count asked for',
    // Scaling to the count asked for again is the run's own request (shown before → after and gated again): safe.
    async check(ctx, data) {
      const live = await liveReplicas(ctx);
      return live === data.to ? { holds: true } : { holds: false, found: `deployment/${deploymentName(ctx.env)} has ${live} replica(s), not ${data.to}` };
    },
  },
});

async function liveReplicas(ctx: Pick<StepContext<AppScaleParams>, 'clients' | 'env'>): Promise<number> {
  const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
  return d.spec?.replicas ?? 0;
}

const rollout = watchRolloutStep<AppScaleParams>();

export default defineProcedure<AppScaleParams>({
  name: 'app scale',
  summary: "Set the deployment's replica count and wait for it",
  seedFixes: [
    'Scaling to 0 takes the service down: it is treated as destructive and gated, which the seed never did.',
    "The replica count is checked against the environment's limits.maxReplicas before anything is contacted.",
    'If the new pods never become ready, the deployment is scaled back to the count it had.',
  ],
  params: [
    { name: 'replicas', flag: '--replicas <n>', description: 'desired number of replicas', type: 'int', required: true, min: 0 },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the pods', type: 'duration' },
  ],
  examples: [['--replicas', '3']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'listHpas', 'scaleDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  validate(p, env) {
    const max = env.config.limits.maxReplicas;
    if (p.replicas > max)
      throw new UsageError(
        `--replicas ${p.replicas} is above this environment's limit of ${max}`,
        `raise environments.${env.name}.limits.maxReplicas if that is really intended`,
      );
  },
  steps: [current, scale, rollout],
});
