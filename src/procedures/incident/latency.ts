import { UsageError, errorMessage } from '../../core/errors.js';
import type { ResolvedEnvironment } from '../../core/config.js';
import { formatDuration } from '../../core/duration.js';
import { defineProcedure, stepFor, type RunData } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { locksStep, primaryStep, replicasStep, slowQueriesStep } from '../db/diagnostics.js';
import { formatRate, readStats, redisCli, type CacheStats } from '../cache/redis-stats.js';
import { oneLine } from '../db/sessions.js';
import { deploymentName, ns, selectorOf } from '../shared/pods.js';
import { failed, podCpu, replicasFor, tolerant, type PodCpu } from './latency-signals.js';

export interface IncidentLatencyParams {
  /** Used by the reused `db slow-queries` step. */
  minMeanMs: number;
  limit: number;
  olderThan: number;
  maxLagSeconds: number;
  minHitRate: number;
}

interface CpuData {
  available: boolean;
  error?: string;
  replicas: number;
  pods: PodCpu[];
}

interface CacheData extends CacheStats {
  target: string;
}

/** A duration as a flag value: whole minutes as 5m, else seconds. */
function durationFlag(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : `${Math.max(1, Math.round(ms / 1000))}s`;
}

/** Maps findings to the commands that address them. */
export function latencySuggestions(run: RunData, p: IncidentLatencyParams, maxReplicas: number): string[] {
  const out: string[] = [];
  const cpu = run.find(cpuStep);
  if (cpu?.available && cpu.pods.length) {
    const sat = cpu.pods.map((x) => x.saturation).filter((x): x is number => x !== null);
    const avg = sat.length ? sat.reduce((a, b) => a + b, 0) / sat.length : 0;
    if (avg >= 0.8) {
      const n = replicasFor(cpu.replicas, avg, 0.6, maxReplicas);
      out.push(
        `pods use ${Math.round(avg * 100)}% of their CPU on average: runbook app scale --replicas ${n}${n === maxReplicas ? " (the environment's limit)" : ''}`,
      );
    }
  }
  const locks = run.find(locksCheck);
  if (locks && !failed(locks)) {
    const roots = locks.blocking.filter((b) => b.root && (b.xactSeconds ?? 0) * 1000 >= p.olderThan);
    if (roots.length)
      out.push(
        `${roots.length} session(s) open for more than ${formatDuration(p.olderThan)} block ${locks.blocked.length} other(s): runbook db kill-long-running --older-than ${durationFlag(p.olderThan)}`,
      );
    else if (locks.blocked.length) out.push(`${locks.blocked.length} session(s) wait for locks: runbook db locks shows the chain`);
  }
  const slow = run.find(slowCheck);
  if (slow && !failed(slow) && slow.queries.length) {
    const q = slow.queries[0];
    out.push(
      `slowest statement ${q.meanMs.toFixed(0)} ms on average (${q.percentOfTotal ?? '?'}% of all time): ${oneLine(q.query, 60)} — check its plan (EXPLAIN ANALYZE) and indexes`,
    );
  }
  const replicas = run.find(replicasCheck);
  if (replicas && !failed(replicas)) {
    for (const r of replicas.replicas) {
      if (!r.ok) out.push(`replica ${r.name} is not serving: ${r.error}; send reads to the primary (runbook app env set READ_REPLICA_ENABLED=false)`);
      else if ((r.lagSeconds ?? 0) > p.maxLagSeconds)
        out.push(`replica ${r.name} is ${Math.round(r.lagSeconds ?? 0)}s behind: reads from it are stale; runbook db replication-lag for the cause`);
    }
  }
  const cache = run.find(cacheCheck);
  if (cache && !failed(cache) && cache.hitRate !== null && cache.hitRate < p.minHitRate) {
    out.push(
      `cache hit rate ${formatRate(cache.hitRate)} is below ${formatRate(p.minHitRate)}${cache.evictedKeys ? ` with ${cache.evictedKeys} evictions` : ''}: flush the problematic entries (runbook cache flush --pattern 'slow:*'), then runbook cache warm --type <type>`,
    );
  }
  return out;
}

const step = stepFor<IncidentLatencyParams>();

const postgresConfigured = (env: ResolvedEnvironment) => Boolean(env.config.postgres);

const slowCheck = tolerant(slowQueriesStep<IncidentLatencyParams>(), postgresConfigured);
const locksCheck = tolerant(locksStep<IncidentLatencyParams>(), postgresConfigured);
const primaryCheck = tolerant(primaryStep<IncidentLatencyParams>(), postgresConfigured);
const replicasCheck = tolerant(replicasStep<IncidentLatencyParams>(), (env) => (env.config.postgres?.replicas.length ?? 0) > 0);

const cpuStep = step({
  id: 'cpu',
  title: "Read the pods' CPU use",
  why: 'Pods at their CPU limit are throttled, and throttling is latency; more replicas spread the load.',
  risk: 'read',
  when: (_p, env) => Boolean(env.config.kubernetes),
  equivalent: (_p, env) => `kubectl top pods -n ${ns(env)} -l ${env.config.kubernetes?.selector ?? `app=${deploymentName(env)}`}`,
  async run(ctx): Promise<CpuData> {
    const kube = await ctx.clients.kube();
    const d = await kube.getDeployment(deploymentName(ctx.env));
    try {
      const metrics = await kube.listPodMetrics(selectorOf(d));
      return { available: true, replicas: d.spec?.replicas ?? 0, pods: podCpu(d, metrics) };
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      ctx.reporter.warn(`pod metrics unavailable (is metrics-server installed?): ${errorMessage(err)}`);
      return { available: false, error: errorMessage(err), replicas: d.spec?.replicas ?? 0, pods: [] };
    }
  },
});

const cacheCheck = tolerant(
  step({
    id: 'cache',
    title: 'Read the cache hit rate',
    why: 'A cold or thrashing cache sends every read to the database; the hit rate and evictions say whether that is happening.',
    risk: 'read',
    equivalent: (_p, env) => `${redisCli(env)} INFO stats`,
    async run(ctx): Promise<CacheData> {
      const client = await ctx.clients.redis();
      return { target: client.target, ...(await readStats(client.masters())) };
    },
  }),
  (env) => Boolean(env.config.redis),
);

const suggest = step({
  id: 'suggest',
  title: 'Suggest the next step',
  why: 'Maps each finding to the command that addresses it: app scale, db kill-long-running, cache flush --pattern.',
  risk: 'read',
  equivalent: () => '# read the output above',
  async run(ctx) {
    const p = { ...ctx.params, minHitRate: ctx.params.minHitRate / 100 };
    return { suggestions: latencySuggestions(ctx, p, ctx.env.config.limits.maxReplicas) };
  },
});

export default defineProcedure<IncidentLatencyParams>({
  name: 'incident latency',
  summary: 'Diagnose high latency: slow queries, lock chains, replication lag, pod CPU, cache hit rate; suggests the command for each finding',
  seedFixes: [
    'The seed lists four unrelated checks and leaves the reader to connect them; this runs them all (each skipped when its service is not configured, and one unreachable service does not hide the others) and maps each finding to the command that addresses it.',
    "The seed's lock query lists every waiting session, idle clients included; this uses `db locks` (pg_blocking_pids) and suggests `db kill-long-running` only for root blockers older than --older-than.",
    "The seed scales to a hard-coded 10 replicas; the suggestion here is sized from the measured CPU saturation and capped at the environment's limit.",
  ],
  params: [
    {
      name: 'minMeanMs',
      flag: '--min-mean-ms <ms>',
      description: 'slow statements: mean time above this',
      type: 'int',
      default: 1000,
      min: 0,
      max: 86_400_000,
    },
    { name: 'limit', flag: '--limit <n>', description: 'slow statements to show', type: 'int', default: 5, min: 1, max: 100 },
    { name: 'olderThan', flag: '--older-than <duration>', description: 'blocking sessions older than this are worth ending', type: 'duration', default: '5m' },
    { name: 'maxLagSeconds', flag: '--max-lag-seconds <s>', description: 'replica lag worth reporting', type: 'int', default: 30, min: 0 },
    { name: 'minHitRate', flag: '--min-hit-rate <percent>', description: 'cache hit rate below this is reported', type: 'int', default: 80, min: 0, max: 100 },
  ],
  examples: [[], ['--min-mean-ms', '200', '--older-than', '1m']],
  requires: [],
  secrets: ['postgres', 'postgresReplicas', 'redis'],
  kube: ['getDeployment', 'listPodMetrics', 'listPods', 'listReplicaSets'],
  validate(_p, env) {
    const c = env.config;
    if (!c.postgres && !c.kubernetes && !c.redis)
      throw new UsageError(`incident latency needs at least one of postgres, kubernetes or redis in environment "${env.name}"`);
  },
  steps: [slowCheck, locksCheck, primaryCheck, replicasCheck, cpuStep, cacheCheck, suggest],
  render(run) {
    const parts: string[] = [];
    const slow = run.find(slowCheck);
    if (slow)
      parts.push(
        failed(slow)
          ? `slow queries: ${slow.error}\n`
          : slow.queries.length
            ? table(
                ['MEAN MS', 'CALLS', '% TOTAL', 'QUERY'],
                slow.queries.map((q) => [q.meanMs.toFixed(1), q.calls, q.percentOfTotal ?? '', oneLine(q.query, 80)]),
              )
            : `no statement slower than ${slow.minMeanMs} ms on average\n`,
      );
    const locks = run.find(locksCheck);
    if (locks)
      parts.push(
        failed(locks)
          ? `locks: ${locks.error}\n`
          : `${locks.blocked.length} blocked session(s), ${locks.blocking.filter((b) => b.root).length} root blocker(s)\n`,
      );
    const primary = run.find(primaryCheck);
    const replicas = run.find(replicasCheck);
    if (primary && !failed(primary) && primary.standbys.length)
      parts.push(
        table(
          ['STANDBY', 'STATE', 'LAG BYTES'],
          primary.standbys.map((s) => [s.application, s.state, s.lagBytes ?? '']),
        ),
      );
    if (replicas && !failed(replicas))
      parts.push(
        table(
          ['REPLICA', 'OK', 'LAG'],
          replicas.replicas.map((r) => [
            r.name,
            r.ok ? 'yes' : `no: ${r.error}`,
            r.lagSeconds === undefined || r.lagSeconds === null ? '' : `${Math.round(r.lagSeconds)}s`,
          ]),
        ),
      );
    const cpu = run.find(cpuStep);
    if (cpu?.available)
      parts.push(
        table(
          ['POD', 'CPU', 'LIMIT', 'SATURATION'],
          cpu.pods.map((x) => [
            x.pod,
            `${Math.round(x.cpu * 1000)}m`,
            x.limit === null ? '' : `${Math.round(x.limit * 1000)}m`,
            x.saturation === null ? '' : `${Math.round(x.saturation * 100)}%`,
          ]),
        ),
      );
    const cache = run.find(cacheCheck);
    if (cache) parts.push(failed(cache) ? `cache: ${cache.error}\n` : `cache hit rate ${formatRate(cache.hitRate)}, ${cache.evictedKeys} evicted\n`);
    const s = run.find(suggest);
    if (s?.suggestions.length) parts.push(s.suggestions.map((x) => `→ ${x}`).join('\n') + '\n');
    else if (s) parts.push('nothing stands out\n');
    return parts.join('\n');
  },
});
