import type { KubeClient, V1Deployment, V1Pod, V1ReplicaSet } from '../../clients/kube.js';
import { StepError } from '../../core/errors.js';
import type { ResolvedEnvironment } from '../../core/config.js';
import type { Step, StepContext } from '../../core/procedure.js';

export interface PodSummary {
  name: string;
  phase: string;
  ready: string;
  restarts: number;
  node?: string;
  age: string;
  revision?: string;
}

/** The deployment's selector as a label-selector string: matchLabels and matchExpressions both. */
export function selectorOf(d: V1Deployment): string {
  const sel = d.spec?.selector;
  const parts = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    const values = (e.values ?? []).join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

/**
 * The container whose log `kubectl logs` would show: the configured one, else the pod's
 * kubectl.kubernetes.io/default-container, else the first. A pod with sidecars refuses a log
 * request that names no container.
 */
export function logContainerOf(p: V1Pod, configured: string | undefined): string | undefined {
  const names = p.spec?.containers.map((c) => c.name) ?? [];
  if (configured && names.includes(configured)) return configured;
  const annotated = p.metadata?.annotations?.['kubectl.kubernetes.io/default-container'];
  if (annotated && names.includes(annotated)) return annotated;
  return names[0];
}

function age(from: Date | string | undefined, now: Date): string {
  if (!from) return '';
  const s = Math.max(0, Math.round((now.getTime() - new Date(from).getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

export function summarizePod(p: V1Pod, now: Date): PodSummary {
  const statuses = p.status?.containerStatuses ?? [];
  const ready = statuses.filter((c) => c.ready).length;
  const waiting = statuses.find((c) => c.state?.waiting)?.state?.waiting?.reason;
  return {
    name: p.metadata?.name ?? '',
    phase: p.metadata?.deletionTimestamp ? 'Terminating' : (waiting ?? p.status?.phase ?? 'Unknown'),
    ready: `${ready}/${statuses.length || p.spec?.containers.length || 0}`,
    restarts: statuses.reduce((n, c) => n + (c.restartCount ?? 0), 0),
    node: p.spec?.nodeName,
    age: age(p.status?.startTime ?? p.metadata?.creationTimestamp, now),
    revision: p.metadata?.labels?.['pod-template-hash'],
  };
}

/** ReplicaSets owned by the deployment, newest revision last. */
export async function ownedReplicaSets(kube: KubeClient, d: V1Deployment): Promise<V1ReplicaSet[]> {
  const sets = await kube.listReplicaSets(selectorOf(d));
  return sets.filter((rs) => rs.metadata?.ownerReferences?.some((o) => o.uid === d.metadata?.uid) ?? false).sort((a, b) => revisionOf(a) - revisionOf(b));
}

export function revisionOf(o: { metadata?: { annotations?: Record<string, string> } }): number {
  return Number(o.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
}

/** The container to change: --container, else the environment's, else the only one. */
export function pickContainer(d: V1Deployment, wanted: string | undefined, env: ResolvedEnvironment): { index: number; name: string } {
  const containers = d.spec?.template.spec?.containers ?? [];
  const name = wanted ?? env.config.kubernetes?.container;
  if (name) {
    const index = containers.findIndex((c) => c.name === name);
    if (index < 0) throw new StepError(`deployment/${d.metadata?.name} has no container "${name}"`, `containers: ${containers.map((c) => c.name).join(', ')}`);
    return { index, name };
  }
  if (containers.length === 1) return { index: 0, name: containers[0].name };
  throw new StepError(
    `deployment/${d.metadata?.name} has ${containers.length} containers; say which with --container`,
    `containers: ${containers.map((c) => c.name).join(', ')}`,
  );
}

export function deploymentName(env: ResolvedEnvironment): string {
  return env.config.kubernetes!.deployment;
}

export function ns(env: ResolvedEnvironment): string {
  return env.config.kubernetes!.namespace;
}

/** Step: the deployment and its pods as they are now (the seed's `kubectl get pods | grep app`). */
export interface DeploymentStatus {
  deployment: string | undefined;
  replicas: number;
  ready: number;
  generation: number | undefined;
  pods: PodSummary[];
}

export function podStatusStep<P>(): Step<P, DeploymentStatus> {
  return {
    id: 'status',
    title: 'Check the deployment and its pods',
    why: 'Know the starting point: how many replicas, how many ready, which revision, before changing anything.',
    risk: 'read',
    equivalent: (_p, env) =>
      `kubectl get deployment/${deploymentName(env)} -n ${ns(env)} && kubectl get pods -n ${ns(env)} -l ${env.config.kubernetes?.selector ?? `app=${deploymentName(env)}`}`,
    async run(ctx: StepContext<P>): Promise<DeploymentStatus> {
      const kube = await ctx.clients.kube();
      const d = await kube.getDeployment(deploymentName(ctx.env));
      const pods = (await kube.listPods(selectorOf(d))).map((p) => summarizePod(p, ctx.now()));
      const notReady = pods.filter((p) => {
        const [ready, total] = p.ready.split('/');
        return ready !== total;
      });
      if (notReady.length) ctx.log(`${notReady.length} pod(s) not ready: ${notReady.map((p) => p.name).join(', ')}`);
      return {
        deployment: d.metadata?.name,
        replicas: d.spec?.replicas ?? 0,
        ready: d.status?.readyReplicas ?? 0,
        generation: d.metadata?.generation,
        pods,
      };
    },
  };
}

/** Step: the last log lines of the deployment's current pods. */
export interface RecentLogs {
  pods: Array<{ pod: string; lines: string[]; error?: string }>;
  errorLines: number;
}

export function recentLogsStep<P>(opts: { tail?: number } = {}): Step<P, RecentLogs> {
  const tailOf = (env: ResolvedEnvironment) => opts.tail ?? env.config.logs?.tail ?? 100;
  return {
    id: 'logs',
    title: 'Show recent logs of the new pods',
    why: "The first minutes after a change are when errors show up; the seed's `kubectl logs -f` never ends, so this takes the last lines and returns.",
    risk: 'read',
    followsWrite: true,
    equivalent: (_p, env) => `kubectl logs deployment/${deploymentName(env)} -n ${ns(env)} --tail=${tailOf(env)}`,
    plan: async (ctx) => [
      { action: 'read the last log lines of', target: `the new pods of deployment/${deploymentName(ctx.env)}`, after: `${tailOf(ctx.env)} lines each` },
    ],
    async run(ctx: StepContext<P>): Promise<RecentLogs> {
      const kube = await ctx.clients.kube();
      const d = await kube.getDeployment(deploymentName(ctx.env));
      const sets = await ownedReplicaSets(kube, d);
      const newest = sets[sets.length - 1];
      const hash = newest?.metadata?.labels?.['pod-template-hash'];
      const pods = (await kube.listPods(selectorOf(d)))
        .filter((p) => !p.metadata?.deletionTimestamp && (!hash || p.metadata?.labels?.['pod-template-hash'] === hash))
        .slice(0, 5);
      const logs = await Promise.all(
        pods.map(async (p) => {
          const name = p.metadata!.name!;
          try {
            const text = await kube.readPodLog(name, { tailLines: tailOf(ctx.env), container: logContainerOf(p, ctx.env.config.kubernetes?.container) });
            return { pod: name, lines: text.split('\n').filter((l) => l !== '') };
          } catch (err) {
            return { pod: name, lines: [], error: (err as Error).message };
          }
        }),
      );
      const errors = logs.reduce((n, l) => n + l.lines.filter((x) => /\b(ERROR|FATAL|panic|Exception)\b/.test(x)).length, 0);
      if (errors) ctx.log(`${errors} error line(s) in the recent logs`);
      return { pods: logs, errorLines: errors };
    },
  };
}
