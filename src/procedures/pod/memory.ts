import { KubeApiError, type KubeClient, type PodMetrics, type V1Pod } from '../../clients/kube.js';
import { StepError, UsageError } from '../../core/errors.js';
import { formatDuration } from '../../core/duration.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { sleep } from '../../core/sleep.js';
import { table } from '../../core/table.js';
import { deploymentName, ns, selectorOf } from '../shared/pods.js';
import { containerUsage, formatMemory, formatPct, podResources, type ContainerUsage } from './usage.js';
import { byText } from '../../core/format.js';

interface Params {
  containers?: boolean;
  threshold: number;
  watch?: boolean;
  /** ms between samples (--watch). */
  interval?: number;
  samples?: number;
}

const DEFAULT_INTERVAL = 30_000;
const DEFAULT_SAMPLES = 10;

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
  return rows.sort((a, b) => (b.pctOfLimit ?? -1) - (a.pctOfLimit ?? -1) || (b.memory ?? -1) - (a.memory ?? -1) || byText(a.pod, b.pod));
}

const step = stepFor<Params>();

/** Reads metrics.k8s.io for the selector; a cluster without it is one line with an install hint. */
async function podMetrics(kube: KubeClient, selector: string): Promise<PodMetrics[]> {
  return kube.listPodMetrics(selector).catch((err: unknown) => {
    if (err instanceof KubeApiError && (err.status === 404 || err.status === 503)) {
      throw new StepError(
        `metrics.k8s.io is not available in context ${kube.context}: ${err.message}`,
        'install metrics-server (kubectl get apiservice v1beta1.metrics.k8s.io)',
      );
    }
    throw err;
  });
}

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
    const [pods, metrics] = await Promise.all([kube.listPods(selector), podMetrics(kube, selector)]);
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

/** One container's memory over the watch. */
export interface Growth {
  pod: string;
  container: string;
  first: number | null;
  last: number | null;
  /** Least-squares slope over the samples since its last restart, bytes per minute (null: fewer than 2). */
  perMinute: number | null;
  limit: number | null;
  pctOfLimit: number | null;
  /** At this rate, when the limit is reached (ms from the last sample); null when not growing or no limit. */
  toLimitMs: number | null;
  /** Restarts seen during the watch, and the last reason (OOMKilled …). */
  restarts: number;
  lastRestartReason?: string;
  samples: number;
}

export interface WatchReport {
  intervalMs: number;
  samples: number;
  durationMs: number;
  threshold: number;
  growth: Growth[];
}

export interface Sample {
  /** ms since the epoch: the metrics' own timestamp when there is one. */
  at: number;
  memory: number | null;
  restarts: number;
  reason?: string;
  limit: number | null;
}

/** Bytes per minute by least squares over (time, memory); null with fewer than two points. */
export function slopePerMinute(points: Array<{ at: number; memory: number }>): number | null {
  if (points.length < 2) return null;
  const t0 = points[0].at;
  const xs = points.map((p) => (p.at - t0) / 60_000);
  const ys = points.map((p) => p.memory);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? null : num / den;
}

/** The growth of each container from its samples (a restart starts its trend again). */
export function growthOf(series: Map<string, Sample[]>): Growth[] {
  const out: Growth[] = [];
  for (const [key, samples] of series) {
    const [pod, container] = key.split('/');
    let since = 0;
    let restarts = 0;
    let reason: string | undefined;
    for (let i = 1; i < samples.length; i++) {
      if (samples[i].restarts > samples[i - 1].restarts) {
        restarts += samples[i].restarts - samples[i - 1].restarts;
        reason = samples[i].reason ?? reason;
        since = i;
      }
    }
    const measured = samples.filter((x): x is Sample & { memory: number } => x.memory !== null);
    const trend = samples.slice(since).filter((x): x is Sample & { memory: number } => x.memory !== null);
    const perMinute = slopePerMinute(trend);
    const last = measured[measured.length - 1]?.memory ?? null;
    const limit = samples[samples.length - 1]?.limit ?? null;
    const toLimitMs = perMinute !== null && perMinute > 0 && limit !== null && last !== null && last < limit ? ((limit - last) / perMinute) * 60_000 : null;
    out.push({
      pod,
      container,
      first: measured[0]?.memory ?? null,
      last,
      perMinute: perMinute === null ? null : Math.round(perMinute),
      limit,
      pctOfLimit: last !== null && limit ? Math.round((last / limit) * 1000) / 10 : null,
      toLimitMs: toLimitMs === null ? null : Math.round(toLimitMs),
      restarts,
      ...(reason ? { lastRestartReason: reason } : {}),
      samples: measured.length,
    });
  }
  return out.sort((a, b) => (b.perMinute ?? -Infinity) - (a.perMinute ?? -Infinity) || byText(a.pod, b.pod) || byText(a.container, b.container));
}

function restartsOf(p: V1Pod, container: string): { restarts: number; reason?: string } {
  const st = p.status?.containerStatuses?.find((c) => c.name === container);
  return { restarts: st?.restartCount ?? 0, reason: st?.lastState?.terminated?.reason };
}

async function takeSample(
  ctx: StepContext<Params>,
  kube: KubeClient,
  selector: string,
  series: Map<string, Sample[]>,
  lastStamp: Map<string, string>,
): Promise<number> {
  const [pods, metrics] = await Promise.all([kube.listPods(selector), podMetrics(kube, selector)]);
  const live = pods.filter((p) => !p.metadata?.deletionTimestamp);
  const usage = containerUsage(live.map(podResources), metrics);
  const now = ctx.now().getTime();
  let taken = 0;
  for (const u of usage) {
    const m = metrics.find((x) => x.name === u.pod);
    // metrics-server measures every 15–60 s: a sample with the same timestamp is not a new figure.
    const key = `${u.pod}/${u.container}`;
    if (m?.timestamp && lastStamp.get(key) === m.timestamp) continue;
    if (m?.timestamp) lastStamp.set(key, m.timestamp);
    const at = m?.timestamp && Number.isFinite(Date.parse(m.timestamp)) ? Date.parse(m.timestamp) : now;
    const pod = live.find((p) => p.metadata?.name === u.pod);
    const list = series.get(key) ?? [];
    series.set(key, list);
    list.push({ at, memory: u.memory, limit: u.memoryLimit, ...(pod ? restartsOf(pod, u.container) : { restarts: 0 }) });
    taken++;
  }
  return taken;
}

const watch = step({
  id: 'watch',
  title: 'Sample the memory over time and work out its growth per container',
  why: 'One reading says how full a container is; a leak shows as memory that keeps growing between samples (and drops at each OOM restart). The rate says how long until the limit.',
  risk: 'read',
  when: (p) => Boolean(p.watch),
  equivalent: (p, env) =>
    `watch -n ${Math.round((p.interval ?? DEFAULT_INTERVAL) / 1000)} kubectl top pods -n ${ns(env)} -l ${env.config.kubernetes?.selector ?? `app=${deploymentName(env)}`} --containers  # and subtract by hand`,
  async run(ctx): Promise<WatchReport> {
    const kube = await ctx.clients.kube();
    const d = await kube.getDeployment(deploymentName(ctx.env));
    const selector = selectorOf(d);
    const interval = ctx.params.interval ?? DEFAULT_INTERVAL;
    const n = ctx.params.samples ?? DEFAULT_SAMPLES;
    const series = new Map<string, Sample[]>();
    const stamps = new Map<string, string>();
    const t0 = performance.now();
    ctx.log(`sampling memory ${n} times, every ${formatDuration(interval)} (about ${formatDuration(interval * (n - 1))}; Ctrl-C stops)`);
    for (let i = 0; i < n; i++) {
      if (i > 0) await sleep(interval, ctx.signal);
      const taken = await takeSample(ctx, kube, selector, series, stamps);
      const g = growthOf(series).filter((x) => x.perMinute !== null);
      const top = g.slice(0, 3).map((x) => `${x.pod}/${x.container} ${formatMemory(x.last)} (${rate(x.perMinute)})`);
      ctx.log(
        `sample ${i + 1}/${n}: ${taken ? `${taken} container(s)` : 'no new figures (metrics not updated yet)'}${top.length ? `; fastest growing: ${top.join(', ')}` : ''}`,
      );
    }
    return { intervalMs: interval, samples: n, durationMs: Math.round(performance.now() - t0), threshold: ctx.params.threshold, growth: growthOf(series) };
  },
});

/** "+12Mi/min", "-3Mi/min", "+1.2Gi/h"; "steady" under 1 MiB an hour. */
export function rate(perMinute: number | null, per: 'min' | 'h' = 'min'): string {
  if (perMinute === null) return '-';
  if (Math.abs(perMinute) * 60 < 2 ** 20) return 'steady';
  const v = Math.abs(perMinute) * (per === 'h' ? 60 : 1);
  const amount =
    v >= 2 ** 30 ? `${Math.round((v / 2 ** 30) * 10) / 10}Gi` : v >= 2 ** 20 ? `${Math.round((v / 2 ** 20) * 10) / 10}Mi` : `${Math.round(v / 1024)}Ki`;
  return `${perMinute > 0 ? '+' : '-'}${amount}/${per}`;
}

export default defineProcedure<Params>({
  name: 'pod memory',
  summary:
    "Memory use of the deployment's pods against their limits, highest first; flags > 90% of the limit (exit 4); --watch shows the growth rate per container",
  seedFixes: [
    "`kubectl top pods -n production --containers` lists every pod of the namespace and shows usage without the limits, so the one about to be OOM-killed has to be worked out by hand; this takes the deployment's pods only, shows usage as a share of the limit, sorts by it and flags those over the threshold.",
    'A pod total can hide one container at its limit: flagging is per container even without --containers.',
    "One `kubectl top` says how full a container is, not whether it leaks: --watch samples metrics.k8s.io over time and prints each container's growth rate (least squares, restarted afresh after an OOM restart) and when it would reach its limit at that rate.",
  ],
  params: [
    { name: 'containers', flag: '--containers', description: 'one row per container instead of per pod', type: 'boolean' },
    { name: 'threshold', flag: '--threshold <percent>', description: 'flag usage above this share of the limit', type: 'int', default: 90, min: 1, max: 100 },
    {
      name: 'watch',
      flag: '--watch',
      description: 'sample the memory over time and show its growth rate per container (a leak keeps growing)',
      type: 'boolean',
    },
    {
      name: 'interval',
      flag: '--interval <duration>',
      description: 'time between samples with --watch (default 30s; metrics-server measures every 15–60s)',
      type: 'duration',
    },
    { name: 'samples', flag: '--samples <n>', description: `how many samples with --watch (default ${DEFAULT_SAMPLES})`, type: 'int', min: 2, max: 10_000 },
  ],
  examples: [[], ['--containers'], ['--threshold', '80', '--json'], ['--watch', '--interval', '30s', '--samples', '20']],
  validate(p) {
    if (!p.watch && (p.interval !== undefined || p.samples !== undefined)) throw new UsageError('--interval and --samples go with --watch', 'add --watch');
    if (p.interval !== undefined && p.interval < 1000) throw new UsageError(`--interval must be at least 1s, got ${formatDuration(p.interval)}`);
  },
  requires: ['kubernetes'],
  kube: ['getDeployment', 'listPodMetrics', 'listPods', 'listReplicaSets'],
  steps: [memory, watch],
  check(run) {
    const r = run.find(memory);
    const over = r?.rows.filter((x) => x.flagged) ?? [];
    const w = run.find(watch);
    const now = w?.growth.filter((g) => g.pctOfLimit !== null && g.pctOfLimit > w.threshold) ?? [];
    const names = [...new Set([...over.map((x) => `${x.pod}${x.container ? `/${x.container}` : ''}`), ...now.map((g) => `${g.pod}/${g.container}`)])];
    if (!names.length) return null;
    return `${names.join(', ')} above ${r?.threshold ?? w?.threshold}% of the memory limit`;
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
    const w = run.find(watch);
    if (w) {
      lines.push('', `growth over ${w.samples} samples, every ${formatDuration(w.intervalMs)} (${formatDuration(w.durationMs)}), fastest first`);
      lines.push(
        table(
          ['POD', 'CONTAINER', 'FIRST', 'LAST', 'RATE', 'PER HOUR', 'LIMIT', '% LIMIT', 'LIMIT IN', 'RESTARTS'],
          w.growth.map((g) => [
            g.pod,
            g.container,
            formatMemory(g.first),
            formatMemory(g.last),
            rate(g.perMinute),
            rate(g.perMinute, 'h'),
            g.limit === null ? 'none' : formatMemory(g.limit),
            formatPct(g.pctOfLimit),
            g.toLimitMs === null ? '-' : `~${formatDuration(g.toLimitMs)}`,
            g.restarts ? `${g.restarts}${g.lastRestartReason ? ` (${g.lastRestartReason})` : ''}` : '0',
          ]),
        ).trimEnd(),
      );
    }
    return lines.join('\n') + '\n';
  },
});
