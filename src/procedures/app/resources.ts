import { lockTargets } from '../../core/lock.js';
import type { V1ResourceRequirements } from '@kubernetes/client-node';
import { UsageError } from '../../core/errors.js';
import { quantityValue } from '../../core/params.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { StepError } from '../../core/errors.js';
import { deploymentName, ns, pickContainer } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';
import { restoreContainer } from '../shared/container-patch.js';

export interface AppResourcesParams {
  container?: string;
  cpuRequest?: string;
  memoryRequest?: string;
  cpuLimit?: string;
  memoryLimit?: string;
  rolloutTimeout?: number;
}

interface Current {
  container: string;
  index: number;
  resources: V1ResourceRequirements | null;
}

/** What the patch step changed: the container's resources before, put back on undo. */
interface ResourcesApplied {
  container: string;
  index: number;
  previous: V1ResourceRequirements | null;
  now: V1ResourceRequirements;
}

function merged(cur: V1ResourceRequirements | null, p: AppResourcesParams): V1ResourceRequirements {
  const requests = { ...(cur?.requests ?? {}) };
  const limits = { ...(cur?.limits ?? {}) };
  if (p.cpuRequest) requests.cpu = p.cpuRequest;
  if (p.memoryRequest) requests.memory = p.memoryRequest;
  if (p.cpuLimit) limits.cpu = p.cpuLimit;
  if (p.memoryLimit) limits.memory = p.memoryLimit;
  const out: V1ResourceRequirements = {};
  if (Object.keys(requests).length) out.requests = requests;
  if (Object.keys(limits).length) out.limits = limits;
  return out;
}

/** Requests must not exceed limits (the API server rejects it; saying so first is kinder). */
export function checkRequestsWithinLimits(r: V1ResourceRequirements): string | null {
  for (const res of ['cpu', 'memory'] as const) {
    const req = r.requests?.[res];
    const lim = r.limits?.[res];
    if (req && lim && quantityValue(String(req)) > quantityValue(String(lim))) return `${res} request ${req} is above its limit ${lim}`;
  }
  return null;
}

/** The same amount however written: the API server stores `1000m` as `1` and `0.5Gi` as `512Mi`. */
function sameQuantity(x: string, y: string): boolean {
  if (x === y) return true;
  const a = quantityValue(x);
  const b = quantityValue(y);
  return Number.isFinite(a) && Number.isFinite(b) && Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

function sameAmounts(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined): boolean {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  for (const k of keys) {
    const x = a?.[k];
    const y = b?.[k];
    if (x === undefined || y === undefined || !sameQuantity(String(x), String(y))) return false;
  }
  return true;
}

export function sameResources(a: V1ResourceRequirements | null | undefined, b: V1ResourceRequirements | null | undefined): boolean {
  return sameAmounts(a?.requests, b?.requests) && sameAmounts(a?.limits, b?.limits);
}

function describe(r: V1ResourceRequirements | null | undefined): string {
  if (!r) return 'none';
  const f = (o?: Record<string, unknown>) =>
    o
      ? Object.entries(o)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')
      : '-';
  return `requests ${f(r.requests)} limits ${f(r.limits)}`;
}

const step = stepFor<AppResourcesParams>();

const current = step({
  id: 'current',
  title: "Read the container's current resources",
  why: 'To merge the change with what is there, check requests ≤ limits on the result, and be able to put it back.',
  risk: 'read',
  equivalent: (p, env) =>
    `kubectl get deployment/${deploymentName(env)} -n ${ns(env)} -o jsonpath='{.spec.template.spec.containers[?(@.name=="${p.container ?? env.config.kubernetes?.container ?? '*'}")].resources}'`,
  async run(ctx): Promise<Current> {
    const kube = await ctx.clients.kube();
    const d = await kube.getDeployment(deploymentName(ctx.env));
    const { index, name } = pickContainer(d, ctx.params.container, ctx.env);
    const resources = d.spec?.template.spec?.containers[index].resources ?? null;
    const problem = checkRequestsWithinLimits(merged(resources, ctx.params));
    if (problem) throw new StepError(`with the current values, ${problem}`, 'raise the limit too');
    return { container: name, index, resources };
  },
  postcondition: {
    describe: "the container's resources are the ones read (or this run's change of them)",
    // A read: reading again is safe, and the change is merged with (and put back to) what is there now.
    async check(ctx, cur) {
      const live = await liveResources(ctx, cur.container);
      if (live === undefined) return { holds: false, found: `deployment/${deploymentName(ctx.env)} has no container "${cur.container}" now` };
      if (sameResources(live, cur.resources) || (ctx.find(patch) && sameResources(live, merged(cur.resources, ctx.params)))) return { holds: true };
      return { holds: false, found: `container ${cur.container} has ${describe(live)} now, ${describe(cur.resources)} were read` };
    },
  },
});

const patch = step({
  id: 'patch',
  title: 'Update the container resources',
  why: 'Changes only the requests and limits given; Kubernetes then rolls out new pods.',
  risk: 'write',
  equivalent: (p, env) => {
    const req = [p.cpuRequest && `cpu=${p.cpuRequest}`, p.memoryRequest && `memory=${p.memoryRequest}`].filter(Boolean).join(',');
    const lim = [p.cpuLimit && `cpu=${p.cpuLimit}`, p.memoryLimit && `memory=${p.memoryLimit}`].filter(Boolean).join(',');
    return `kubectl set resources deployment/${deploymentName(env)} -n ${ns(env)}${p.container ? ` -c ${p.container}` : ''}${req ? ` --requests=${req}` : ''}${lim ? ` --limits=${lim}` : ''}`;
  },
  async plan(ctx) {
    const cur = ctx.get(current);
    const next = merged(cur.resources, ctx.params);
    if (sameResources(next, cur.resources)) return [];
    const kube = await ctx.clients.kube();
    await kube.patchDeployment(deploymentName(ctx.env), patchFor(cur.container, next), 'strategic', { dryRun: true });
    return [
      {
        action: 'update',
        target: `deployment/${deploymentName(ctx.env)} container ${cur.container}`,
        before: describe(cur.resources),
        after: describe(next),
        validated: true,
      },
    ];
  },
  async run(ctx): Promise<ResourcesApplied> {
    const cur = ctx.get(current);
    const kube = await ctx.clients.kube();
    const next = merged(cur.resources, ctx.params);
    await kube.patchDeployment(deploymentName(ctx.env), patchFor(cur.container, next), 'strategic');
    return { container: cur.container, index: cur.index, previous: cur.resources, now: next };
  },
  async undo(ctx, data) {
    await restoreContainer(await ctx.clients.kube(), deploymentName(ctx.env), data.index, data.container, 'resources', data.previous);
  },
  undoByHand: (ctx, data) => `kubectl rollout undo deployment/${deploymentName(ctx.env)} -n ${ns(ctx.env)}  # previous: ${describe(data.previous)}`,
  postcondition: {
    describe: "the container's resources are the ones asked for",
    // Patching the same requests and limits again is the run's own request (gated again): safe.
    async check(ctx, data) {
      const live = await liveResources(ctx, data.container);
      if (live === undefined) return { holds: false, found: `deployment/${deploymentName(ctx.env)} has no container "${data.container}" now` };
      return sameResources(live, data.now)
        ? { holds: true }
        : { holds: false, found: `container ${data.container} has ${describe(live)}, not ${describe(data.now)}` };
    },
  },
});

/** The container's resources now (null: none set), or undefined when the deployment has no such container. */
async function liveResources(
  ctx: Pick<StepContext<AppResourcesParams>, 'clients' | 'env'>,
  container: string,
): Promise<V1ResourceRequirements | null | undefined> {
  const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
  const c = d.spec?.template.spec?.containers.find((x) => x.name === container);
  return c ? (c.resources ?? null) : undefined;
}

const rollout = watchRolloutStep<AppResourcesParams>();

export default defineProcedure<AppResourcesParams>({
  name: 'app resources',
  summary: "Change a container's CPU/memory requests and limits and wait for the rollout",
  seedFixes: [
    'The seed opens `kubectl edit` at 3 a.m.; this changes exactly the fields given, checks requests ≤ limits and the quantities before anything is contacted, validates with a server-side dry run, and waits for the rollout.',
    'If the rollout does not complete, the previous resources are put back.',
  ],
  params: [
    { name: 'container', flag: '--container <name>', description: "container to change (default: the only one, or the environment's)", type: 'k8sName' },
    { name: 'cpuRequest', flag: '--cpu-request <qty>', description: 'CPU request, e.g. 500m', type: 'quantity' },
    { name: 'memoryRequest', flag: '--memory-request <qty>', description: 'memory request, e.g. 512Mi', type: 'quantity' },
    { name: 'cpuLimit', flag: '--cpu-limit <qty>', description: 'CPU limit, e.g. 1000m', type: 'quantity' },
    { name: 'memoryLimit', flag: '--memory-limit <qty>', description: 'memory limit, e.g. 1Gi', type: 'quantity' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the rollout', type: 'duration' },
  ],
  examples: [['--cpu-request', '500m', '--memory-request', '512Mi', '--cpu-limit', '1000m', '--memory-limit', '1Gi']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'patchDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  validate(p) {
    if (!p.cpuRequest && !p.memoryRequest && !p.cpuLimit && !p.memoryLimit) {
      throw new UsageError('nothing to change', 'give at least one of --cpu-request, --memory-request, --cpu-limit, --memory-limit');
    }
    const problem = checkRequestsWithinLimits(merged(null, p));
    if (problem) throw new UsageError(problem);
  },
  steps: [current, patch, rollout],
});

function patchFor(container: string, resources: V1ResourceRequirements) {
  return { spec: { template: { spec: { containers: [{ name: container, resources }] } } } };
}
