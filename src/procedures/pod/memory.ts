import { KubeApiError } from '../../clients/kube.js';
import { StepError } from '../../core/errors.js';
import { defineProcedure, stepFor } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { deploymentName, ns, selectorOf } from '../shared/pods.js';
import { containerUsage, formatMemory, formatPct, podResources, type ContainerUsage } from './usage.js';

interface Params {
  containers?: boolean;
  threshold: number;
}

/** One row: a container, or a whole pod (sum of its containers) without --containers. */
export interface MemoryRow {
  pod: string;
  container?: string;
  memory: number | null;
  request: number | null;
  limit: number | null;
  pctOfLimit: number | null;
  flagged: boolean;
}

export interface MemoryReport {
  deployment: string;
  threshold: number;
  perContainer: boolean;
  rows: MemoryRow[];
  /** Pods the metrics API had no figures for (not running yet, or just started). */
  withoutMetrics: string[];
}

const sum = (xs: Array<number | null>): number | null => (xs.some((x) => x === null) ? null : xs.reduce<number>((a, b) => a + (b ?? 0), 0));

/** Rows sorted by share of the limit (highest first; no limit last), then by usage. */
export function memoryRows(usage: ContainerUsage[], perContainer: boolean, threshold: number): MemoryRow[] {
  let rows: MemoryRow[];
  if (perContainer) {
    rows = usage.map((u) => ({
      pod: u.pod,
      container: u.container,
      memory: u.memory,
      request: u.memoryRequest,
      limit: u.memoryLimit,
      pctOfLimit: u.memoryPctOfLimit,
      flagged: false,
    }));
  } else {
    const pods = [...new Set(usage.map((u) => u.pod))];
    rows = pods.map((pod) => {
      const cs = usage.filter((u) => u.pod === pod);
      const memory = sum(cs.map((c) => c.memory));
      const limit = sum(cs.map((c) => c.memoryLimit));
      return {
        pod,
        memory,
        request: sum(cs.map((c) => c.memoryRequest)),
        limit,
        pctOfLimit: memory !== null && limit ? Math.round((memory / limit) * 1000) / 10 : null,
        flagged: false,
      };
    });
  }
  // A pod's total can hide one container at its limit: flag on the worst container either way.
  for (const r of rows) {
    const cs = usage.filter((u) => u.pod === r.pod && (r.container === undefined || u.container === r.container));
    r.flagged = cs.some((c) => c.memoryPctOfLimit !== null && c.memoryPctOfLimit > threshold);
  }
  return rows.sort((a, b) => (b.pctOfLimit ?? -1) - (a.pctOfLimit ?? -1) || (b.memory ?? -1) - (a.memory ?? -1) || a.pod.localeCompare(b.pod));
}

const step = stepFor<Params>();

const memory = step({
  id: 'memory',
  title: "Read the pods' memory usage (metrics.k8s.io) and their limits",
  why: 'A container that reaches its memory limit is killed (OOMKilled, exit 137) and restarts; catching it at 90% leaves time to act.',
  risk: 'read',
  equivalent: (p, env) =>
    `kubectl top pods -n ${ns(env)} -l ${env.config.kubernetes?.selector ?? `app=${deploymentName(env)}`}${p.containers ? ' --containers' : ''}`,
  async run(ctx): Promise<MemoryReport> {
    const kube = await ctx.clients.kube();
    const name = deploymentName(ctx.env);
    const d = await kube.getDeployment(name);
    const selector = selectorOf(d);
    const [pods, metrics] = await Promise.all([
      kube.listPods(selector),
      kube.listPodMetrics(selector).catch((err: unknown) => {
        if (err instanceof KubeApiError && (err.status === 404 || err.status === 503)) {
          throw new StepError(
            `metrics.k8s.io is not available in context ${kube.context}: ${err.message}`,
            'install metrics-server (kubectl get apiservice v1beta1.metrics.k8s.io)',
          );
        }
        throw err;
      }),
    ]);
    const live = pods.filter((p) => !p.metadata?.deletionTimestamp);
    const usage = containerUsage(live.map(podResources), metrics);
    const withMetrics = new Set(metrics.map((m) => m.name));
    const rows = memoryRows(usage, Boolean(ctx.params.containers), ctx.params.threshold);
    const flagged = rows.filter((r) => r.flagged);
    if (flagged.length) ctx.log(`${flagged.length} ${ctx.params.containers ? 'container(s)' : 'pod(s)'} above ${ctx.params.threshold}% of the memory limit`);
    return {
      deployment: name,
      threshold: ctx.params.threshold,
      perContainer: Boolean(ctx.params.containers),
      rows,
      withoutMetrics: live.map((p) => p.metadata?.name ?? '').filter((n) => !withMetrics.has(n)),
    };
  },
});

export default defineProcedure<Params>({
  name: 'pod memory',
  summary: "Memory use of the deployment's pods against their limits, highest first; flags > 90% of the limit (exit 4)",
  seedFixes: [
    "`kubectl top pods -n production --containers` lists every pod of the namespace and shows usage without the limits, so the one about to be OOM-killed has to be worked out by hand; this takes the deployment's pods only, shows usage as a share of the limit, sorts by it and flags those over the threshold.",
    'A pod total can hide one container at its limit: flagging is per container even without --containers.',
  ],
  params: [
    { name: 'containers', flag: '--containers', description: 'one row per container instead of per pod', type: 'boolean' },
    { name: 'threshold', flag: '--threshold <percent>', description: 'flag usage above this share of the limit', type: 'int', default: 90, min: 1, max: 100 },
  ],
  examples: [[], ['--containers'], ['--threshold', '80', '--json']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'listPodMetrics', 'listPods', 'listReplicaSets'],
  steps: [memory],
  check(run) {
    const r = run.find(memory);
    const over = r?.rows.filter((x) => x.flagged) ?? [];
    if (!over.length) return null;
    return `${over.map((x) => `${x.pod}${x.container ? `/${x.container}` : ''}`).join(', ')} above ${r!.threshold}% of the memory limit`;
  },
  render(run) {
    const r = run.get(memory);
    const head = r.perContainer ? ['POD', 'CONTAINER', 'MEMORY', 'REQUEST', 'LIMIT', '% LIMIT', ''] : ['POD', 'MEMORY', 'REQUEST', 'LIMIT', '% LIMIT', ''];
    const rows = r.rows.map((x) => {
      const cells = [
        formatMemory(x.memory),
        formatMemory(x.request),
        x.limit === null ? 'none' : formatMemory(x.limit),
        formatPct(x.pctOfLimit),
        x.flagged ? `> ${r.threshold}%` : '',
      ];
      return r.perContainer ? [x.pod, x.container, ...cells] : [x.pod, ...cells];
    });
    const lines = [`deployment/${r.deployment}: memory against limits, highest first`, table(head, rows).trimEnd()];
    if (r.withoutMetrics.length) lines.push(`no metrics yet for: ${r.withoutMetrics.join(', ')}`);
    return lines.join('\n') + '\n';
  },
});
