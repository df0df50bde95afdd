import { defineProcedure, stepFor } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { deploymentName, ns, selectorOf, summarizePod, type PodSummary } from '../shared/pods.js';

interface Scaling {
  deployment: { name: string; replicas: number; ready: number; available: number };
  hpa: null | { name: string; min: number; max: number; current: number; desired: number; cpuTarget?: number; cpuCurrent?: number };
  pods: PodSummary[];
}

const step = stepFor<Record<string, never>>();

const scaling = step({
  id: 'scaling',
  title: 'Read the autoscaler, the deployment and its pods',
  why: 'One view of what the autoscaler wants and what is running.',
  risk: 'read',
  equivalent: (_p, env) =>
    `kubectl get hpa -n ${ns(env)} && kubectl get pods -n ${ns(env)} -l ${env.config.kubernetes?.selector ?? `app=${deploymentName(env)}`}`,
  async run(ctx): Promise<Scaling> {
    const kube = await ctx.clients.kube();
    const name = deploymentName(ctx.env);
    // The three reads at once: the pods by the configured selector, kept only if it is the
    // deployment's own (else read again by the deployment's).
    const configured = ctx.env.config.kubernetes?.selector;
    const [d, hpas, early] = await Promise.all([
      kube.getDeployment(name),
      kube.listHpas(),
      configured ? kube.listPods(configured).catch(() => undefined) : undefined,
    ]);
    const hpa = hpas.find((h) => h.spec?.scaleTargetRef?.name === name);
    const selector = selectorOf(d);
    const pods = (early && configured === selector ? early : await kube.listPods(selector)).map((p) => summarizePod(p, ctx.now()));
    const cpuMetric = hpa?.spec?.metrics?.find((m) => m.resource?.name === 'cpu');
    const cpuNow = hpa?.status?.currentMetrics?.find((m) => m.resource?.name === 'cpu');
    return {
      deployment: { name, replicas: d.spec?.replicas ?? 0, ready: d.status?.readyReplicas ?? 0, available: d.status?.availableReplicas ?? 0 },
      hpa: hpa
        ? {
            name: hpa.metadata?.name ?? '',
            min: hpa.spec?.minReplicas ?? 1,
            max: hpa.spec?.maxReplicas ?? 0,
            current: hpa.status?.currentReplicas ?? 0,
            desired: hpa.status?.desiredReplicas ?? 0,
            cpuTarget: cpuMetric?.resource?.target?.averageUtilization,
            cpuCurrent: cpuNow?.resource?.current?.averageUtilization,
          }
        : null,
      pods,
    };
  },
});

export default defineProcedure<Record<string, never>>({
  name: 'app scaling',
  summary: 'Show the autoscaler and the pods',
  seedFixes: ['`watch kubectl get pods` never ends and cannot be scripted; this prints one snapshot (or --json) and exits.'],
  params: [],
  examples: [[]],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'listHpas', 'listPods', 'listReplicaSets'],
  steps: [scaling],
  render(run) {
    const s = run.get(scaling);
    const parts: string[] = [];
    parts.push(`deployment/${s.deployment.name}: ${s.deployment.ready}/${s.deployment.replicas} ready, ${s.deployment.available} available`);
    if (s.hpa) {
      parts.push(
        table(
          ['HPA', 'MIN', 'MAX', 'CURRENT', 'DESIRED', 'CPU'],
          [[s.hpa.name, s.hpa.min, s.hpa.max, s.hpa.current, s.hpa.desired, `${s.hpa.cpuCurrent ?? '?'}%/${s.hpa.cpuTarget ?? '?'}%`]],
        ).trimEnd(),
      );
    } else parts.push('no autoscaler');
    parts.push(
      table(
        ['POD', 'STATUS', 'READY', 'RESTARTS', 'AGE', 'NODE'],
        s.pods.map((p) => [p.name, p.phase, p.ready, p.restarts, p.age, p.node]),
      ).trimEnd(),
    );
    return parts.join('\n\n') + '\n';
  },
});
