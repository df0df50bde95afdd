import { lockTargets } from '../../core/lock.js';
import type { V2HorizontalPodAutoscaler } from '../../clients/kube.js';
import { StepError, UsageError } from '../../core/errors.js';
import { defineProcedure, stepFor, type Recheck, type StepContext } from '../../core/procedure.js';
import { deploymentName, ns } from '../shared/pods.js';

export interface AppAutoscaleParams {
  min: number;
  max: number;
  cpuPercent: number;
}

interface Current {
  exists: boolean;
  hpa: V2HorizontalPodAutoscaler | null;
}

/** What the apply step changed: the autoscaler it created, or the spec it replaced (put back on undo). */
interface HpaApplied {
  created: boolean;
  hpa: string;
  previous: V2HorizontalPodAutoscaler['spec'] | null;
  now: string | undefined;
}

function desired(name: string, p: AppAutoscaleParams): V2HorizontalPodAutoscaler['spec'] {
  return {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
    minReplicas: p.min,
    maxReplicas: p.max,
    metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: p.cpuPercent } } }],
  };
}

function describe(spec: V2HorizontalPodAutoscaler['spec'] | null | undefined): string | undefined {
  if (!spec) return undefined;
  const cpu = spec.metrics?.find((m) => m.resource?.name === 'cpu')?.resource?.target?.averageUtilization;
  return `min ${spec.minReplicas ?? 1}, max ${spec.maxReplicas}${cpu !== undefined ? `, cpu ${cpu}%` : ''}`;
}

const step = stepFor<AppAutoscaleParams>();

const current = step({
  id: 'current',
  title: 'Read the current autoscaler',
  why: 'To update rather than fail when one exists, and to be able to put its settings back.',
  risk: 'read',
  equivalent: (_p, env) => `kubectl get hpa -n ${ns(env)}  # the one whose target is deployment/${deploymentName(env)}`,
  async run(ctx): Promise<Current> {
    const kube = await ctx.clients.kube();
    const name = deploymentName(ctx.env);
    await kube.getDeployment(name);
    // Found by what it scales, not by name: an HPA named otherwise would otherwise get a rival.
    const found = await kube.findHpasFor(name);
    if (found.length > 1) {
      throw new StepError(
        `${found.length} autoscalers target deployment/${name}: ${found.map((h) => h.metadata?.name).join(', ')}`,
        'two HPAs fight over one deployment; delete all but one (kubectl delete hpa/<name>) and run this again',
      );
    }
    const hpa = found[0] ?? null;
    return { exists: Boolean(hpa), hpa };
  },
  postcondition: {
    describe: 'the autoscaler is as read (or as this run set it)',
    // A read: reading again is safe, and whether to create or update (and what to put back) follows what is there now.
    async check(ctx, cur): Promise<Recheck> {
      const live = await liveHpa(ctx);
      const now = describe(live?.spec) ?? 'none';
      const was = describe(cur.hpa?.spec) ?? 'none';
      const sameOne = (live?.metadata?.name ?? null) === (cur.hpa?.metadata?.name ?? null);
      if (sameOne && now === was) return { holds: true };
      const applied = ctx.find(apply);
      if (applied && live?.metadata?.name === applied.hpa && now === describe(desired(deploymentName(ctx.env), ctx.params))) return { holds: true };
      return {
        holds: false,
        found: `the autoscaler of deployment/${deploymentName(ctx.env)} is ${live ? `hpa/${live.metadata?.name} (${now})` : 'gone'} now, ${was} was read`,
      };
    },
  },
});

const apply = step({
  id: 'apply',
  title: 'Create or update the autoscaler',
  why: 'The HPA keeps replicas between min and max, targeting the CPU utilisation given.',
  risk: 'write',
  equivalent: (p, env) => `kubectl autoscale deployment ${deploymentName(env)} --cpu-percent=${p.cpuPercent} --min=${p.min} --max=${p.max} -n ${ns(env)}`,
  async plan(ctx) {
    const kube = await ctx.clients.kube();
    const name = deploymentName(ctx.env);
    const cur = ctx.get(current);
    const spec = desired(name, ctx.params);
    if (cur.hpa && describe(cur.hpa.spec) === describe(spec)) return [];
    if (cur.hpa) await kube.patchHpaSpec(cur.hpa.metadata!.name!, spec, { dryRun: true });
    else await kube.createHpa(hpaObject(name, spec), { dryRun: true });
    return [
      {
        action: cur.hpa ? 'update' : 'create',
        target: `hpa/${cur.hpa?.metadata?.name ?? name}`,
        before: describe(cur.hpa?.spec),
        after: describe(spec),
        validated: true,
      },
    ];
  },
  async run(ctx): Promise<HpaApplied> {
    const kube = await ctx.clients.kube();
    const name = deploymentName(ctx.env);
    const cur = ctx.get(current);
    const spec = desired(name, ctx.params);
    const hpaName = cur.hpa?.metadata?.name ?? name;
    if (cur.hpa) await kube.patchHpaSpec(hpaName, spec);
    else await kube.createHpa(hpaObject(name, spec));
    return { created: !cur.hpa, hpa: hpaName, previous: cur.hpa?.spec ?? null, now: describe(spec) };
  },
  async undo(ctx, data) {
    const kube = await ctx.clients.kube();
    if (data.created) return kube.deleteHpa(data.hpa);
    if (data.previous) await kube.patchHpaSpec(data.hpa, data.previous);
  },
  undoByHand: (ctx, data) =>
    data.created ? `kubectl delete hpa/${data.hpa} -n ${ns(ctx.env)}` : `kubectl edit hpa/${data.hpa} -n ${ns(ctx.env)}  # restore: ${describe(data.previous)}`,
  postcondition: {
    describe: 'the autoscaler has the min, max and CPU target asked for',
    // Creating or updating it to the settings asked for again is the run's own request (gated again): safe.
    async check(ctx, data) {
      const live = await liveHpa(ctx);
      const want = describe(desired(deploymentName(ctx.env), ctx.params));
      if (live && describe(live.spec) === want) return { holds: true };
      return { holds: false, found: live ? `hpa/${live.metadata?.name} has ${describe(live.spec)}, not ${want}` : `hpa/${data.hpa} is gone` };
    },
  },
});

/** The one autoscaler that targets the deployment now (null: none); more than one is the current step's error. */
async function liveHpa(ctx: Pick<StepContext<AppAutoscaleParams>, 'clients' | 'env'>): Promise<V2HorizontalPodAutoscaler | null> {
  const found = await (await ctx.clients.kube()).findHpasFor(deploymentName(ctx.env));
  return found.length === 1 ? found[0] : null;
}

export default defineProcedure<AppAutoscaleParams>({
  name: 'app autoscale',
  summary: "Create or update the deployment's HorizontalPodAutoscaler",
  seedFixes: [
    '`kubectl autoscale` fails when an autoscaler already exists; this creates it or updates it in place (autoscaling/v2), and puts the old settings back if anything fails.',
    "--min above --max, or --max above the environment's limit, is refused before anything is contacted.",
  ],
  params: [
    { name: 'min', flag: '--min <n>', description: 'minimum replicas', type: 'int', required: true, min: 1 },
    { name: 'max', flag: '--max <n>', description: 'maximum replicas', type: 'int', required: true, min: 1 },
    { name: 'cpuPercent', flag: '--cpu-percent <n>', description: 'target average CPU utilisation', type: 'int', default: 70, min: 1, max: 100 },
  ],
  examples: [['--min', '2', '--max', '10', '--cpu-percent', '70']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'findHpasFor', 'createHpa', 'patchHpaSpec', 'deleteHpa'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  validate(p, env) {
    if (p.min > p.max) throw new UsageError(`--min ${p.min} is greater than --max ${p.max}`);
    const limit = env.config.limits.maxReplicas;
    if (p.max > limit)
      throw new UsageError(`--max ${p.max} is above this environment's limit of ${limit}`, `raise environments.${env.name}.limits.maxReplicas if intended`);
  },
  steps: [current, apply],
});

function hpaObject(name: string, spec: V2HorizontalPodAutoscaler['spec']): V2HorizontalPodAutoscaler {
  return { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'runbook' } }, spec };
}
