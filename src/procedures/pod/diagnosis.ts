import type { V1Container, V1ContainerStatus, V1Probe } from '@kubernetes/client-node';
import type { CoreV1Event, V1Pod } from '../../clients/kube.js';
import { summarizePod } from '../shared/pods.js';
import { formatMemory, type ContainerUsage } from './usage.js';
import { byText } from '../../core/format.js';

/** A probe, as one readable line plus the numbers that matter. */
export interface ProbeSummary {
  kind: 'liveness' | 'readiness' | 'startup';
  action: string;
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
}

export interface ContainerReport {
  name: string;
  init: boolean;
  image: string;
  ready: boolean;
  restarts: number;
  /** running | waiting | terminated | unknown */
  state: string;
  waiting?: { reason: string; message?: string };
  terminated?: { reason?: string; exitCode: number; finishedAt?: string };
  lastTermination?: { reason?: string; exitCode: number; signal?: number; finishedAt?: string; message?: string };
  requests: { cpu?: string; memory?: string };
  limits: { cpu?: string; memory?: string };
  probes: ProbeSummary[];
}

/** A secret or config map the pod needs, and where it is used. */
export interface Reference {
  kind: 'secret' | 'configmap';
  name: string;
  /** Set for env valueFrom (one key) and for volume items. */
  keys: string[];
  optional: boolean;
  usedBy: string[];
}

export type Verdict = 'failing' | 'pending' | 'not-ready' | 'terminating' | 'restarted' | 'completed' | 'healthy';

export interface PodReport {
  name: string;
  uid?: string;
  status: string;
  phase: string;
  ready: string;
  restarts: number;
  node?: string;
  age: string;
  verdict: Verdict;
  /** Conditions that are not True (PodScheduled, Ready, …). */
  conditions: Array<{ type: string; reason?: string; message?: string }>;
  containers: ContainerReport[];
  references: Reference[];
}

/** Waiting reasons that mean the container cannot run as it is (not a transient start). */
export const FAILING_WAITING = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'ErrImageNeverPull',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
  'PreCreateHookError',
  'PostStartHookError',
]);

const iso = (d: Date | string | undefined): string | undefined => (d === undefined ? undefined : new Date(d).toISOString());

function describeProbe(kind: ProbeSummary['kind'], p: V1Probe): ProbeSummary {
  let action = 'unknown';
  if (p.httpGet) action = `http ${p.httpGet.scheme === 'HTTPS' ? 'https' : 'GET'} :${p.httpGet.port}${p.httpGet.path ?? '/'}`;
  else if (p.tcpSocket) action = `tcp :${p.tcpSocket.port}`;
  else if (p.exec) action = `exec ${(p.exec.command ?? []).join(' ')}`;
  else if (p.grpc) action = `grpc :${p.grpc.port}`;
  return {
    kind,
    action,
    initialDelaySeconds: p.initialDelaySeconds ?? 0,
    periodSeconds: p.periodSeconds ?? 10,
    timeoutSeconds: p.timeoutSeconds ?? 1,
    failureThreshold: p.failureThreshold ?? 3,
  };
}

function container(spec: V1Container, status: V1ContainerStatus | undefined, init: boolean): ContainerReport {
  const st = status?.state;
  const last = status?.lastState?.terminated;
  const probes: ProbeSummary[] = [];
  if (spec.livenessProbe) probes.push(describeProbe('liveness', spec.livenessProbe));
  if (spec.readinessProbe) probes.push(describeProbe('readiness', spec.readinessProbe));
  if (spec.startupProbe) probes.push(describeProbe('startup', spec.startupProbe));
  return {
    name: spec.name,
    init,
    image: spec.image ?? '',
    ready: status?.ready ?? false,
    restarts: status?.restartCount ?? 0,
    state: st?.running ? 'running' : st?.waiting ? 'waiting' : st?.terminated ? 'terminated' : 'unknown',
    ...(st?.waiting ? { waiting: { reason: st.waiting.reason ?? 'Waiting', message: st.waiting.message } } : {}),
    ...(st?.terminated ? { terminated: { reason: st.terminated.reason, exitCode: st.terminated.exitCode, finishedAt: iso(st.terminated.finishedAt) } } : {}),
    ...(last
      ? { lastTermination: { reason: last.reason, exitCode: last.exitCode, signal: last.signal, finishedAt: iso(last.finishedAt), message: last.message } }
      : {}),
    requests: { cpu: spec.resources?.requests?.cpu, memory: spec.resources?.requests?.memory },
    limits: { cpu: spec.resources?.limits?.cpu, memory: spec.resources?.limits?.memory },
    probes,
  };
}

/** Every secret and config map the pod spec needs: env valueFrom, envFrom, volumes (also projected), image pull secrets. */
export function podReferences(p: V1Pod): Reference[] {
  const refs = new Map<string, Reference>();
  const add = (kind: Reference['kind'], name: string | undefined, usedBy: string, optional: boolean | undefined, keys: string[] = []) => {
    if (!name) return;
    const id = `${kind}/${name}`;
    const r = refs.get(id) ?? { kind, name, keys: [], optional: true, usedBy: [] };
    // A reference is optional only if every use of it is optional.
    r.optional = r.optional && optional === true;
    for (const k of keys) if (!r.keys.includes(k)) r.keys.push(k);
    if (!r.usedBy.includes(usedBy)) r.usedBy.push(usedBy);
    refs.set(id, r);
  };
  const spec = p.spec;
  for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
    for (const e of c.env ?? []) {
      const s = e.valueFrom?.secretKeyRef;
      const m = e.valueFrom?.configMapKeyRef;
      if (s) add('secret', s.name, `env ${e.name} (${c.name})`, s.optional, [s.key]);
      if (m) add('configmap', m.name, `env ${e.name} (${c.name})`, m.optional, [m.key]);
    }
    for (const f of c.envFrom ?? []) {
      if (f.secretRef) add('secret', f.secretRef.name, `envFrom (${c.name})`, f.secretRef.optional);
      if (f.configMapRef) add('configmap', f.configMapRef.name, `envFrom (${c.name})`, f.configMapRef.optional);
    }
  }
  for (const v of spec?.volumes ?? []) {
    if (v.secret)
      add(
        'secret',
        v.secret.secretName,
        `volume ${v.name}`,
        v.secret.optional,
        (v.secret.items ?? []).map((i) => i.key),
      );
    if (v.configMap)
      add(
        'configmap',
        v.configMap.name,
        `volume ${v.name}`,
        v.configMap.optional,
        (v.configMap.items ?? []).map((i) => i.key),
      );
    for (const src of v.projected?.sources ?? []) {
      if (src.secret)
        add(
          'secret',
          src.secret.name,
          `volume ${v.name}`,
          src.secret.optional,
          (src.secret.items ?? []).map((i) => i.key),
        );
      if (src.configMap)
        add(
          'configmap',
          src.configMap.name,
          `volume ${v.name}`,
          src.configMap.optional,
          (src.configMap.items ?? []).map((i) => i.key),
        );
    }
  }
  for (const s of spec?.imagePullSecrets ?? []) add('secret', s.name, 'imagePullSecrets', false);
  return [...refs.values()];
}

function verdictOf(p: V1Pod, containers: ContainerReport[]): Verdict {
  if (p.metadata?.deletionTimestamp) return 'terminating';
  const phase = p.status?.phase ?? 'Unknown';
  if (phase === 'Failed' || containers.some((c) => c.waiting && FAILING_WAITING.has(c.waiting.reason))) return 'failing';
  if (phase === 'Succeeded') return 'completed';
  if (phase !== 'Running') return 'pending';
  const app = containers.filter((c) => !c.init);
  if (app.some((c) => !c.ready) || p.status?.conditions?.some((c) => c.type === 'Ready' && c.status !== 'True')) return 'not-ready';
  if (app.some((c) => c.restarts > 0)) return 'restarted';
  return 'healthy';
}

const SEVERITY: Record<Verdict, number> = { failing: 6, pending: 5, 'not-ready': 4, restarted: 3, completed: 2, terminating: 1, healthy: 0 };

/** Unhealthy for the exit code: scripts get 4 for these. Terminating and restarted-but-ready are not. */
export function isUnhealthy(v: Verdict): boolean {
  return v === 'failing' || v === 'pending' || v === 'not-ready';
}

/** The pod's status, containers (init ones too), probes and references, in one serialisable report. */
export function inspectPod(p: V1Pod, now: Date): PodReport {
  const sum = summarizePod(p, now);
  const statuses = p.status?.containerStatuses ?? [];
  const initStatuses = p.status?.initContainerStatuses ?? [];
  const containers = [
    ...(p.spec?.initContainers ?? []).map((c) =>
      container(
        c,
        initStatuses.find((s) => s.name === c.name),
        true,
      ),
    ),
    ...(p.spec?.containers ?? []).map((c) =>
      container(
        c,
        statuses.find((s) => s.name === c.name),
        false,
      ),
    ),
  ];
  const initWaiting = containers.find((c) => c.init && c.waiting)?.waiting?.reason;
  return {
    name: sum.name,
    uid: p.metadata?.uid,
    status: initWaiting ? `Init:${initWaiting}` : sum.phase,
    phase: p.status?.phase ?? 'Unknown',
    ready: sum.ready,
    restarts: sum.restarts,
    node: sum.node,
    age: sum.age,
    verdict: verdictOf(p, containers),
    conditions: (p.status?.conditions ?? []).filter((c) => c.status !== 'True').map((c) => ({ type: c.type, reason: c.reason, message: c.message })),
    containers,
    references: podReferences(p),
  };
}

/** Worst first: failing, pending, not ready, restarted, …, then by restarts. */
export function worstFirst(a: PodReport, b: PodReport): number {
  return SEVERITY[b.verdict] - SEVERITY[a.verdict] || b.restarts - a.restarts || byText(a.name, b.name);
}

export interface EventSummary {
  type: string;
  reason: string;
  message: string;
  count: number;
  last?: string;
}

export function summarizeEvents(events: CoreV1Event[], uid: string | undefined, max = 15): EventSummary[] {
  const when = (e: CoreV1Event) => new Date(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp ?? 0).getTime();
  return events
    .filter((e) => (e.involvedObject.kind ?? 'Pod') === 'Pod' && (!uid || !e.involvedObject.uid || e.involvedObject.uid === uid))
    .sort((a, b) => when(a) - when(b))
    .slice(-max)
    .map((e) => ({
      type: e.type ?? 'Normal',
      reason: e.reason ?? '',
      message: e.message ?? '',
      count: e.count ?? e.series?.count ?? 1,
      last: when(e) ? new Date(when(e)).toISOString() : undefined,
    }));
}

export interface LogExcerpt {
  pod: string;
  container: string;
  previous: boolean;
  lines: string[];
  error?: string;
}

export interface CheckedReference extends Reference {
  /** ok | missing (the object) | missing-key (some keys) | unknown (could not check, e.g. RBAC) */
  status: 'ok' | 'missing' | 'missing-key' | 'unknown';
  missingKeys?: string[];
  error?: string;
  pods: string[];
}

export interface UsageData {
  available: boolean;
  error?: string;
  containers: ContainerUsage[];
}

export interface Finding {
  severity: 'critical' | 'warning' | 'info';
  pod?: string;
  container?: string;
  problem: string;
  cause?: string;
  next: string[];
}

export interface DiagnoseInput {
  namespace: string;
  deployment?: string;
  pods: PodReport[];
  events: Record<string, EventSummary[]>;
  logs: LogExcerpt[];
  usage?: UsageData;
  references: CheckedReference[];
  /** Usage threshold (percent of the limit) above which memory/CPU is flagged. */
  threshold: number;
}

/** What an exit code says about how the container ended. */
export function explainExit(t: { reason?: string; exitCode: number }): string {
  const code = t.exitCode;
  if (t.reason === 'OOMKilled') return `killed for exceeding its memory limit (OOMKilled, exit code ${code})`;
  if (code === 0) return 'the process exited normally (exit code 0), but the pod restarts it: the main process must keep running in the foreground';
  if (code === 137) return 'killed by SIGKILL (exit code 137): an out-of-memory kill, a failed liveness probe, or a stop that outlived its grace period';
  if (code === 143) return 'stopped by SIGTERM (exit code 143): the kubelet stopped it (a failed liveness probe, an eviction or a deletion)';
  if (code === 139) return 'crashed with a segmentation fault (exit code 139)';
  if (code === 127) return "command not found (exit code 127): the image's entrypoint or the container's command/args are wrong";
  if (code === 126) return 'command not executable (exit code 126): permissions or the wrong binary in the image';
  if (code > 128 && code < 160) return `killed by signal ${code - 128} (exit code ${code})`;
  return `the application exited with an error (exit code ${code}${t.reason ? `, ${t.reason}` : ''})`;
}

/**
 * An OOM kill with the memory at the time: a cgroup OOM kill happens at the container's limit (its
 * memory then), and the usage now says how far it has climbed since the restart. Without a limit
 * the node itself ran out of memory, and nothing recorded the container's share.
 */
export function oomDetail(pod: string, c: ContainerReport, usage: UsageData | undefined): string {
  const u = usage?.containers.find((x) => x.pod === pod && x.container === c.name);
  const at = c.limits.memory
    ? `it was killed at its memory limit of ${c.limits.memory} (its memory at the time)`
    : 'it has no memory limit: the node ran out of memory (its memory at the time is not recorded)';
  const now =
    u?.memory !== null && u?.memory !== undefined
      ? `; ${formatMemory(u.memory)} now${u.memoryPctOfLimit !== null ? ` (${u.memoryPctOfLimit}% of the limit)` : ''}, since its restart`
      : '';
  return `${at}${now}`;
}

const isOom = (t: { reason?: string } | undefined) => t?.reason === 'OOMKilled';

/** What to run after an OOM kill: the trend, a heap dump of the process, then more memory. */
function oomNext(pod: string, c: string): string[] {
  return [
    'runbook pod memory --containers',
    'runbook pod memory --containers --watch  (a leak grows between restarts)',
    `runbook pod heap-dump ${pod} --container ${c}`,
    `runbook app resources --container ${c} --memory-limit <more>`,
  ];
}

const ERROR_LINE = /\b(error|fatal|panic|exception|traceback|refused|denied|cannot|unable|failed)\b/i;

function lastErrorLine(lines: string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) if (ERROR_LINE.test(lines[i])) return lines[i].slice(0, 300);
  return undefined;
}

/** The findings: what is wrong, the likely cause, and the commands to run next. Pure, for unit tests. */
export function diagnose(d: DiagnoseInput): Finding[] {
  const out: Finding[] = [];
  const ns = d.namespace;
  const once = new Set<string>();
  const onceOnly = (key: string) => (once.has(key) ? false : (once.add(key), true));
  for (const p of d.pods) {
    const events = d.events[p.name] ?? [];
    const warnings = events.filter((e) => e.type === 'Warning');
    const lastWarning = (reason: string, match?: RegExp) => [...warnings].reverse().find((e) => e.reason === reason && (!match || match.test(e.message)));
    const describe = `kubectl describe pod ${p.name} -n ${ns}`;
    for (const c of p.containers) {
      const logs = d.logs.find((l) => l.pod === p.name && l.container === c.name);
      const reason = c.waiting?.reason;
      if (reason === 'CrashLoopBackOff' || (c.lastTermination && c.restarts > 0 && !c.ready && isUnhealthy(p.verdict))) {
        const t = c.lastTermination;
        const liveness = lastWarning('Unhealthy', /liveness/i);
        const errLine = logs ? lastErrorLine(logs.lines) : undefined;
        const causes = [t ? explainExit(t) : 'the container keeps exiting'];
        if (isOom(t)) causes.push(oomDetail(p.name, c, d.usage));
        if (liveness && t && (t.exitCode === 137 || t.exitCode === 143)) {
          const probe = c.probes.find((x) => x.kind === 'liveness');
          causes.push(
            `the liveness probe fails ("${liveness.message}")${probe && !c.probes.some((x) => x.kind === 'startup') ? `; if the app starts slowly, add a startupProbe or raise initialDelaySeconds (now ${probe.initialDelaySeconds}s)` : ''}`,
          );
        }
        if (errLine) causes.push(`last error in the ${logs?.previous ? 'previous' : 'current'} log: ${errLine}`);
        const next = [`kubectl logs ${p.name} -n ${ns} -c ${c.name} --previous --tail=100`, describe];
        if (isOom(t)) next.push(...oomNext(p.name, c.name));
        else if (t?.exitCode === 137) next.push('runbook pod memory --containers', `runbook app resources --container ${c.name} --memory-limit <more>`);
        out.push({
          severity: 'critical',
          pod: p.name,
          container: c.name,
          problem: `${c.init ? 'init container' : 'container'} ${c.name} is ${reason === 'CrashLoopBackOff' ? 'crash-looping' : 'restarting'}: ${c.restarts} restart(s)${t ? `, last exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}${t.finishedAt ? ` at ${t.finishedAt}` : ''}` : ''}`,
          cause: causes.join('; '),
          next,
        });
      } else if (reason === 'ImagePullBackOff' || reason === 'ErrImagePull' || reason === 'InvalidImageName' || reason === 'ErrImageNeverPull') {
        const ev = lastWarning('Failed', /image|pull/i);
        const pullSecrets = d.references.filter((r) => r.usedBy.includes('imagePullSecrets') && r.pods.includes(p.name) && r.status !== 'ok');
        out.push({
          severity: 'critical',
          pod: p.name,
          container: c.name,
          problem: `cannot pull image ${c.image} (${reason})`,
          cause: [
            ev?.message ?? c.waiting?.message ?? 'the image name or tag is wrong, or the registry refuses the credentials',
            ...pullSecrets.map((r) => `image pull secret ${r.name} is ${r.status}`),
          ].join('; '),
          next: [
            describe,
            `kubectl get events -n ${ns} --field-selector involvedObject.name=${p.name}`,
            'runbook app rollback  (if a recent deploy changed the image)',
          ],
        });
      } else if (reason === 'CreateContainerConfigError' || reason === 'CreateContainerError' || reason === 'RunContainerError') {
        out.push({
          severity: 'critical',
          pod: p.name,
          container: c.name,
          problem: `container ${c.name} cannot be created (${reason})`,
          cause: c.waiting?.message ?? 'usually a missing secret, config map or key; see the references below',
          next: [describe],
        });
      } else if (c.restarts > 0 && c.lastTermination) {
        const t = c.lastTermination;
        out.push({
          severity: 'warning',
          pod: p.name,
          container: c.name,
          problem: `container ${c.name} ${isOom(t) ? 'was OOMKilled' : 'restarted'}: ${c.restarts} restart(s); last exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}${t.finishedAt ? ` at ${t.finishedAt}` : ''}`,
          cause: isOom(t) ? `${explainExit(t)}; ${oomDetail(p.name, c, d.usage)}` : explainExit(t),
          next: [`kubectl logs ${p.name} -n ${ns} -c ${c.name} --previous --tail=100`, ...(isOom(t) ? oomNext(p.name, c.name) : [])],
        });
      }
      if (!c.init && !c.probes.some((x) => x.kind === 'readiness') && onceOnly(`noreadiness/${c.name}`)) {
        out.push({
          severity: 'info',
          container: c.name,
          pod: d.pods.length === 1 ? p.name : undefined,
          problem: `container ${c.name} has no readiness probe`,
          cause: 'traffic reaches it as soon as it starts, ready or not',
          next: [],
        });
      }
    }
    if (p.verdict === 'pending') {
      const unscheduled = p.conditions.find((c) => c.type === 'PodScheduled');
      const ev = lastWarning('FailedScheduling');
      out.push({
        severity: 'critical',
        pod: p.name,
        problem: unscheduled ? `pod ${p.name} cannot be scheduled` : `pod ${p.name} is ${p.status}`,
        cause:
          unscheduled?.message ?? ev?.message ?? p.containers.find((c) => c.waiting)?.waiting?.message ?? 'the pod has not started yet; the events say why',
        next: [
          describe,
          ...(unscheduled ? ['kubectl describe nodes', 'kubectl top nodes'] : [`kubectl get events -n ${ns} --field-selector involvedObject.name=${p.name}`]),
        ],
      });
    } else if (p.verdict === 'not-ready' && !p.containers.some((c) => c.waiting)) {
      const ev = lastWarning('Unhealthy', /readiness/i);
      const probes = p.containers.flatMap((c) => c.probes.filter((x) => x.kind === 'readiness').map((x) => `${c.name}: ${x.action}`));
      out.push({
        severity: 'critical',
        pod: p.name,
        problem: `pod ${p.name} is running but not ready (${p.ready})`,
        cause: ev
          ? `readiness probe fails: ${ev.message}${probes.length ? ` (${probes.join(', ')})` : ''}`
          : probes.length
            ? `readiness probe ${probes.join(', ')} does not pass yet`
            : 'a container is not ready',
        next: [describe, `kubectl logs ${p.name} -n ${ns} --tail=100`],
      });
    } else if (p.phase === 'Failed') {
      out.push({
        severity: 'critical',
        pod: p.name,
        problem: `pod ${p.name} failed`,
        cause:
          p.conditions
            .map((c) => c.message)
            .filter(Boolean)
            .join('; ') || undefined,
        next: [describe],
      });
    }
    const covered = new Set(['BackOff', 'Unhealthy', 'Failed', 'FailedScheduling']);
    const seen = new Set<string>();
    for (const e of [...warnings].reverse()) {
      if (covered.has(e.reason) || seen.has(e.reason)) continue;
      seen.add(e.reason);
      out.push({
        severity: 'warning',
        pod: p.name,
        problem: `warning event ${e.reason} (×${e.count})`,
        cause: e.message,
        next: [`kubectl get events -n ${ns} --field-selector involvedObject.name=${p.name}`],
      });
    }
  }
  for (const r of d.references) {
    if (r.status === 'ok' || (r.optional && r.status === 'missing')) continue;
    const get = r.kind === 'secret' ? `kubectl describe secret ${r.name} -n ${ns}` : `kubectl describe configmap ${r.name} -n ${ns}`;
    const what = `${r.kind === 'secret' ? 'secret' : 'config map'} ${r.name}`;
    if (r.status === 'unknown') {
      out.push({ severity: 'warning', problem: `could not check ${what}`, cause: r.error, next: [get] });
      continue;
    }
    out.push({
      severity: 'critical',
      pod: r.pods.length === 1 ? r.pods[0] : undefined,
      problem: r.status === 'missing' ? `${what} does not exist in namespace ${ns}` : `${what} has no key ${(r.missingKeys ?? []).join(', ')}`,
      cause: `referenced by ${r.usedBy.join(', ')}; ${
        r.usedBy.every((u) => u === 'imagePullSecrets')
          ? 'images from a private registry cannot be pulled without it (ErrImagePull: unauthorized)'
          : 'the container cannot start without it (CreateContainerConfigError or a volume that never mounts)'
      }`,
      next: [
        r.status === 'missing' ? `kubectl get ${r.kind} ${r.name} -n ${ns}` : get,
        `create it, or fix the reference in deployment/${d.deployment ?? '<owner>'}`,
      ],
    });
  }
  if (d.usage?.available) {
    for (const u of d.usage.containers) {
      if (u.memoryPctOfLimit !== null && u.memoryPctOfLimit > d.threshold) {
        out.push({
          severity: 'warning',
          pod: u.pod,
          container: u.container,
          problem: `memory at ${u.memoryPctOfLimit}% of its limit`,
          cause: 'close to an out-of-memory kill (exit code 137, OOMKilled)',
          next: ['runbook pod memory --containers', `runbook app resources --container ${u.container} --memory-limit <more>`],
        });
      }
      if (u.cpuPctOfLimit !== null && u.cpuPctOfLimit > d.threshold) {
        out.push({
          severity: 'warning',
          pod: u.pod,
          container: u.container,
          problem: `CPU at ${u.cpuPctOfLimit}% of its limit`,
          cause: 'the container is being throttled: slow responses, failing probes',
          next: [`runbook app resources --container ${u.container} --cpu-limit <more>`],
        });
      }
      if (u.memoryLimit === null && onceOnly(`nolimit/${u.container}`)) {
        out.push({
          severity: 'info',
          container: u.container,
          problem: `container ${u.container} has no memory limit`,
          cause: "it can take the node's memory and get other pods evicted",
          next: [`runbook app resources --container ${u.container} --memory-limit <limit>`],
        });
      }
    }
  } else if (d.usage && !d.usage.available) {
    out.push({
      severity: 'info',
      problem: 'no usage figures: metrics.k8s.io is not available',
      cause: d.usage.error,
      next: ['kubectl get apiservice v1beta1.metrics.k8s.io'],
    });
  }
  const order = { critical: 0, warning: 1, info: 2 };
  return out.sort((a, b) => order[a.severity] - order[b.severity]);
}

/** Why the check fails (exit 4), or null when every pod is healthy and nothing it needs is missing. */
export function unhealthyReason(pods: PodReport[], refs: CheckedReference[], deployment?: string): string | null {
  const reasons: string[] = [];
  if (pods.length === 0 && deployment) reasons.push(`deployment/${deployment} has no pods`);
  for (const p of pods) if (isUnhealthy(p.verdict)) reasons.push(`pod ${p.name} is ${p.verdict === 'failing' ? p.status : p.verdict}`);
  for (const r of refs) if (!r.optional && (r.status === 'missing' || r.status === 'missing-key')) reasons.push(`${r.kind} ${r.name} is ${r.status}`);
  return reasons.length ? reasons.join('; ') : null;
}

/** The pods step's data: the pod asked for, or the deployment's pods worst first. */
export interface PodsData {
  namespace: string;
  deployment?: string;
  selector?: string;
  pods: PodReport[];
}
