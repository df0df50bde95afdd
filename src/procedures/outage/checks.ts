import { parseDuration } from '../../core/duration.js';
import type { Step, StepContext } from '../../core/procedure.js';
import { ns, summarizePod, type PodSummary } from '../shared/pods.js';

/** One configured dependency's answer. */
export interface DependencyHealth {
  name: string;
  url: string;
  ok: boolean;
  status?: number;
  latencyMs: number;
  error?: string;
}

/** One configured service's pods (label app=<name>). */
export interface ServicePods {
  service: string;
  pods: number;
  ready: number;
  /** "name (phase)" of each pod not running and ready. */
  notReady: string[];
}

/** Pods per configured service (label app=<name>), all services in parallel. */
export function servicePodsStep<P>(): Step<P, { services: ServicePods[] }> {
  return {
    id: 'services',
    title: 'List the pods of every service',
    why: 'Which services have pods down, crash-looping or pending tells where the outage is (the seed loops over services one by one).',
    risk: 'read',
    when: (_p, env) => Boolean(env.config.services?.length),
    equivalent: (_p, env) => (env.config.services ?? []).map((s) => `kubectl get pods -n ${ns(env)} -l app=${s}`).join(' && '),
    async run(ctx): Promise<{ services: ServicePods[] }> {
      const kube = await ctx.clients.kube();
      const services = await Promise.all(
        ctx.env.config.services!.map(async (name): Promise<ServicePods> => {
          const pods: PodSummary[] = (await kube.listPods(`app=${name}`)).map((p) => summarizePod(p, ctx.now()));
          const isReady = (p: PodSummary) => p.phase === 'Running' && p.ready.split('/')[0] === p.ready.split('/')[1];
          const ready = pods.filter(isReady).length;
          return { service: name, pods: pods.length, ready, notReady: pods.filter((p) => !isReady(p)).map((p) => `${p.name} (${p.phase})`) };
        }),
      );
      const down = services.filter((s) => s.pods === 0 || s.ready < s.pods);
      if (down.length) ctx.log(`not all ready: ${down.map((s) => `${s.service} ${s.ready}/${s.pods}`).join(', ')}`);
      return { services };
    },
  };
}

async function probe<P>(
  ctx: Pick<StepContext<P>, 'clients' | 'signal'>,
  dep: { name: string; url: string; timeout: string; expectStatus?: number },
): Promise<DependencyHealth> {
  const t0 = performance.now();
  try {
    const res = await ctx.clients.http.request(dep.url, { timeoutMs: parseDuration(dep.timeout), signal: ctx.signal });
    const ok = dep.expectStatus !== undefined ? res.status === dep.expectStatus : res.status >= 200 && res.status < 400;
    return { name: dep.name, url: dep.url, ok, status: res.status, latencyMs: Math.round(performance.now() - t0) };
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return { name: dep.name, url: dep.url, ok: false, latencyMs: Math.round(performance.now() - t0), error: (err as Error).message };
  }
}

/** Each external dependency's health URL, in parallel, each with its own timeout. */
export function dependencyHealthStep<P>(): Step<P, { dependencies: DependencyHealth[] }> {
  return {
    id: 'dependencies',
    title: 'Check the external dependencies',
    why: "An outage is often someone else's: a payment gateway or auth service down changes what to do next. All are asked at once, each with its own time limit.",
    risk: 'read',
    when: (_p, env) => Boolean(env.config.dependencies?.length),
    equivalent: (_p, env) =>
      (env.config.dependencies ?? [])
        .map((d) => `curl -sS -o /dev/null -w '%{http_code}' --max-time ${Math.ceil(parseDuration(d.timeout) / 1000)} ${d.url}`)
        .join(' & ') + ' ; wait',
    async run(ctx): Promise<{ dependencies: DependencyHealth[] }> {
      const results = await Promise.all(ctx.env.config.dependencies!.map((d) => probe(ctx, d)));
      const bad = results.filter((r) => !r.ok);
      if (bad.length) ctx.reporter.warn(`unhealthy: ${bad.map((b) => `${b.name} (${b.error ?? `HTTP ${b.status}`})`).join(', ')}`);
      return { dependencies: results };
    },
  };
}
