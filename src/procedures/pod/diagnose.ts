import { KubeApiError } from '../../clients/kube.js';
import { StepError } from '../../core/errors.js';
import { defineProcedure, stepFor } from '../../core/procedure.js';
import { deploymentName, ns, selectorOf } from '../shared/pods.js';
import {
  type PodsData,
  diagnose,
  inspectPod,
  isUnhealthy,
  summarizeEvents,
  unhealthyReason,
  worstFirst,
  type CheckedReference,
  type EventSummary,
  type Finding,
  type LogExcerpt,
  type PodReport,
  type UsageData,
} from './diagnosis.js';
import { containerUsage, labelsSelector } from './usage.js';
import { renderDiagnosis } from './diagnosis-render.js';

interface Params {
  pod?: string;
  tail: number;
}

/** In deployment mode, details (events, logs) are fetched for at most this many pods. */
const MAX_DETAILED = 5;

/** The pods worth a closer look: the named pod, or the deployment's unhealthy (or restarted) ones. */
function detailed(data: PodsData): PodReport[] {
  if (!data.deployment) return data.pods;
  return data.pods.filter((p) => p.verdict !== 'healthy' && p.verdict !== 'terminating').slice(0, MAX_DETAILED);
}

const step = stepFor<Params>();

const inspected = step({
  id: 'pods',
  title: 'Read the pod status, containers, probes and references',
  why: 'Phase, readiness, restarts, the last termination (reason, exit code, when) and waiting reasons such as CrashLoopBackOff say what state the pod is in.',
  risk: 'read',
  equivalent: (p, env) =>
    p.pod
      ? `kubectl get pod ${p.pod} -n ${ns(env)} -o yaml`
      : `kubectl get pods -n ${ns(env)} -l ${env.config.kubernetes?.selector ?? `app=${deploymentName(env)}`} -o yaml`,
  async run(ctx): Promise<PodsData> {
    const kube = await ctx.clients.kube();
    const namespace = ns(ctx.env);
    if (ctx.params.pod) {
      const pod = await kube.getPod(ctx.params.pod);
      if (!pod) {
        throw new StepError(
          `pod "${ctx.params.pod}" not found in namespace ${namespace} (context ${kube.context})`,
          `run "runbook pod diagnose" without a name to diagnose the pods of deployment/${deploymentName(ctx.env)}, or list them with "kubectl get pods -n ${namespace}"`,
        );
      }
      return { namespace, selector: labelsSelector(pod), pods: [inspectPod(pod, ctx.now())] };
    }
    const name = deploymentName(ctx.env);
    const d = await kube.getDeployment(name);
    const selector = selectorOf(d);
    const pods = (await kube.listPods(selector)).map((p) => inspectPod(p, ctx.now())).sort(worstFirst);
    const bad = pods.filter((p) => isUnhealthy(p.verdict));
    ctx.log(`deployment/${name}: ${pods.length} pod(s), ${bad.length} unhealthy`);
    return { namespace, deployment: name, selector, pods };
  },
});

const podEvents = step({
  id: 'events',
  title: 'Read the events of the pod(s)',
  why: 'The kubelet and scheduler explain themselves in events: BackOff, failed probes, image pull errors, scheduling and mount failures.',
  risk: 'read',
  equivalent: (p, env) => `kubectl get events -n ${ns(env)} --field-selector involvedObject.name=${p.pod ?? '<pod>'} --sort-by=.lastTimestamp`,
  async run(ctx): Promise<Record<string, EventSummary[]>> {
    const kube = await ctx.clients.kube();
    const pods = detailed(ctx.get(inspected));
    const lists = await Promise.all(pods.map((p) => kube.listEvents(`involvedObject.name=${p.name}`)));
    return Object.fromEntries(pods.map((p, i) => [p.name, summarizeEvents(lists[i], p.uid)]));
  },
});

const podLogs = step({
  id: 'logs',
  title: 'Read the previous container logs (or the current ones)',
  why: "A crashed container's own last words are in the log of its previous instance; the current one has only just started.",
  risk: 'read',
  equivalent: (p, env) => `kubectl logs ${p.pod ?? '<pod>'} -n ${ns(env)} --previous --tail=${p.tail}`,
  async run(ctx): Promise<LogExcerpt[]> {
    const kube = await ctx.clients.kube();
    const jobs = detailed(ctx.get(inspected)).flatMap((p) =>
      p.containers
        .filter((c) => !ctx.get(inspected).deployment || !c.ready || c.restarts > 0)
        .map(async (c): Promise<LogExcerpt> => {
          const previous = c.restarts > 0 || c.lastTermination !== undefined;
          const read = (prev: boolean) => kube.readPodLog(p.name, { container: c.name, tailLines: ctx.params.tail, previous: prev });
          try {
            const text = await read(previous);
            return { pod: p.name, container: c.name, previous, lines: text.split('\n').filter((l) => l !== '') };
          } catch (err) {
            // No previous instance (400) is normal after a node restart or for a first crash: fall back to the current log.
            if (previous && err instanceof KubeApiError && err.status === 400) {
              try {
                const text = await read(false);
                return { pod: p.name, container: c.name, previous: false, lines: text.split('\n').filter((l) => l !== '') };
              } catch (e2) {
                return { pod: p.name, container: c.name, previous: false, lines: [], error: (e2 as Error).message };
              }
            }
            return { pod: p.name, container: c.name, previous, lines: [], error: (err as Error).message };
          }
        }),
    );
    return Promise.all(jobs);
  },
});

const podUsage = step({
  id: 'usage',
  title: 'Compare usage with requests and limits (metrics.k8s.io)',
  why: 'A container near its memory limit gets OOM-killed (exit 137); one at its CPU limit is throttled and fails probes.',
  risk: 'read',
  equivalent: (p, env) =>
    p.pod
      ? `kubectl top pod ${p.pod} -n ${ns(env)} --containers`
      : `kubectl top pod -n ${ns(env)} -l ${env.config.kubernetes?.selector ?? `app=${deploymentName(env)}`} --containers`,
  async run(ctx): Promise<UsageData> {
    const kube = await ctx.clients.kube();
    const data = ctx.get(inspected);
    try {
      const metrics = await kube.listPodMetrics(data.selector);
      return { available: true, containers: containerUsage(data.pods, metrics) };
    } catch (err) {
      // A cluster without metrics-server still gets the rest of the diagnosis.
      ctx.log(`usage unavailable: ${(err as Error).message}`);
      return { available: false, error: (err as Error).message, containers: containerUsage(data.pods, []) };
    }
  },
});

const checkedReferences = step({
  id: 'references',
  title: 'Check the secrets and config maps the pod needs',
  why: 'A missing secret, config map or key keeps a container from starting (CreateContainerConfigError) or a volume from mounting.',
  risk: 'read',
  equivalent: (_p, env) => `kubectl get secrets,configmaps -n ${ns(env)}`,
  async run(ctx): Promise<CheckedReference[]> {
    const kube = await ctx.clients.kube();
    const merged = new Map<string, CheckedReference>();
    for (const p of ctx.get(inspected).pods) {
      for (const r of p.references) {
        const id = `${r.kind}/${r.name}`;
        const m = merged.get(id) ?? { ...r, keys: [], usedBy: [], status: 'ok' as const, pods: [] };
        m.optional = merged.has(id) ? m.optional && r.optional : r.optional;
        for (const k of r.keys) if (!m.keys.includes(k)) m.keys.push(k);
        for (const u of r.usedBy) if (!m.usedBy.includes(u)) m.usedBy.push(u);
        m.pods.push(p.name);
        merged.set(id, m);
      }
    }
    return Promise.all(
      [...merged.values()].map(async (r): Promise<CheckedReference> => {
        try {
          const keys = r.kind === 'secret' ? await kube.getSecretKeys(r.name) : await kube.getConfigMapKeys(r.name);
          if (keys === null) return { ...r, status: 'missing' };
          const missingKeys = r.keys.filter((k) => !keys.includes(k));
          return missingKeys.length ? { ...r, status: 'missing-key', missingKeys } : r;
        } catch (err) {
          return { ...r, status: 'unknown', error: (err as Error).message };
        }
      }),
    );
  },
});

const diagnosis = step({
  id: 'findings',
  title: 'Work out the likely causes and the next commands',
  why: 'The facts above, read the way an experienced on-call engineer would: what is wrong, why it probably is, and what to run next.',
  risk: 'read',
  equivalent: (p, env) => `kubectl describe pod ${p.pod ?? '<pod>'} -n ${ns(env)}`,
  async run(ctx): Promise<{ unhealthy: string | null; findings: Finding[] }> {
    const data = ctx.get(inspected);
    const refs = ctx.get(checkedReferences);
    const findings = diagnose({
      namespace: data.namespace,
      deployment: data.deployment ?? deploymentName(ctx.env),
      pods: data.pods,
      events: ctx.get(podEvents),
      logs: ctx.get(podLogs),
      usage: ctx.get(podUsage),
      references: refs,
      threshold: 90,
    });
    return { unhealthy: unhealthyReason(data.pods, refs, data.deployment), findings };
  },
});

export default defineProcedure<Params>({
  name: 'pod diagnose',
  summary: 'Why a pod is unhealthy: status, restarts, last exit, events, previous logs, usage, missing secrets/config maps, probes; exit 4 when unhealthy',
  seedFixes: [
    'The seed runs five commands and leaves the reading to you (`describe`, `logs --previous`, `top`, `get secrets`, `get -o yaml | grep probe`); this gathers the same facts in one pass and says what they mean, with the next command to run.',
    "`kubectl get secrets` / `get configmaps` lists what exists, not what the pod needs: this checks every reference of the pod (env valueFrom, envFrom, volumes, image pull secrets), down to the keys, without ever reading a secret's values.",
    '`kubectl top pod` shows usage without the limits; here usage is shown as a share of the limit, and > 90% is flagged.',
    '`grep -A5 probe` on YAML misses probe fields; probes are summarised per container.',
    "Without a pod name it diagnoses the deployment's pods, worst first, because at 3 a.m. nobody knows the random pod names; exit 4 when a pod is unhealthy, for scripts.",
  ],
  params: [
    { name: 'pod', argument: '[pod]', description: "pod name (default: every pod of the environment's deployment, worst first)", type: 'k8sName' },
    { name: 'tail', flag: '--tail <lines>', description: 'log lines to show per container', type: 'int', default: 30, min: 1, max: 10_000 },
  ],
  examples: [[], ['app-7d9f8b6c5d-x2kqp'], ['app-7d9f8b6c5d-x2kqp', '--tail', '100', '--json']],
  requires: ['kubernetes'],
  kube: ['getConfigMapKeys', 'getDeployment', 'getPod', 'getSecretKeys', 'listEvents', 'listPodMetrics', 'listPods', 'listReplicaSets', 'readPodLog'],
  steps: [inspected, podEvents, podLogs, podUsage, checkedReferences, diagnosis],
  check: (run) => run.find(diagnosis)?.unhealthy ?? null,
  render: (run) =>
    renderDiagnosis({
      pods: run.find(inspected),
      events: run.find(podEvents),
      logs: run.find(podLogs),
      usage: run.find(podUsage),
      references: run.find(checkedReferences),
      findings: run.find(diagnosis),
    }),
});
