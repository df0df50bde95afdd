import { StepError, errorMessage } from '../../core/errors.js';
import { parseDuration } from '../../core/duration.js';
import type { Step, StepContext } from '../../core/procedure.js';
import { sleep } from '../../core/sleep.js';

export interface Healthy {
  url: string;
  status: number;
  attempts: number;
  latencyMs: number;
}

/** A health URL and how to poll it: a number of attempts, or as many as fit in `withinMs`. */
export interface HealthProbe {
  url: string;
  expectStatus: number;
  interval: string;
  timeout: string;
  attempts?: number;
  withinMs?: number;
}

export type HealthOutcome = ({ healthy: true } & Healthy) | { healthy: false; url: string; attempts: number; problem: string };

/**
 * The one health poller (app restart, outage recover's stages, dr's target region): GET the URL until
 * it answers the expected status, or the attempts (or the time) run out. `onMiss` hears each miss.
 */
export async function pollHealth(
  ctx: Pick<StepContext<unknown>, 'clients' | 'signal'>,
  probe: HealthProbe,
  onMiss?: (attempt: number, problem: string) => void,
): Promise<HealthOutcome> {
  const interval = parseDuration(probe.interval);
  const timeout = parseDuration(probe.timeout);
  const deadline = probe.withinMs === undefined ? Infinity : performance.now() + probe.withinMs;
  let problem = '';
  for (let attempt = 1; ; attempt++) {
    const t0 = performance.now();
    const left = Math.max(1, Math.ceil(deadline - t0));
    try {
      const res = await ctx.clients.http.request(probe.url, { timeoutMs: Math.min(timeout, left), signal: ctx.signal });
      if (res.status === probe.expectStatus)
        return { healthy: true, url: probe.url, status: res.status, attempts: attempt, latencyMs: Math.round(performance.now() - t0) };
      problem = `HTTP ${res.status}`;
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      // An attempt cut short by our own time limit says nothing new: the answer before it does.
      if (!(left < timeout && problem)) problem = errorMessage(err);
    }
    onMiss?.(attempt, problem);
    const last = (probe.attempts !== undefined && attempt >= probe.attempts) || performance.now() + interval > deadline;
    if (last) return { healthy: false, url: probe.url, attempts: attempt, problem };
    await sleep(interval, ctx.signal);
  }
}

/** The environment's health URL, polled as configured; not healthy is a step failure. */
export async function checkHealth<P>(ctx: StepContext<P>): Promise<Healthy> {
  const h = ctx.env.config.health!;
  const r = await pollHealth(ctx, h, (attempt, problem) => ctx.log(`health attempt ${attempt}/${h.attempts}: ${problem}`));
  if (!r.healthy) throw new StepError(`${h.url} not healthy after ${h.attempts} attempts: ${r.problem}`, `check it by hand: curl -fsS ${h.url}`);
  return { url: r.url, status: r.status, attempts: r.attempts, latencyMs: r.latencyMs };
}

export function healthStep<P>(): Step<P, Healthy> {
  return {
    id: 'health',
    title: 'Verify the health URL',
    why: 'A finished rollout only means Kubernetes is satisfied; the health URL says whether users are. Retried, because a new pod may need a moment.',
    risk: 'read',
    equivalent: (_p, env) => `curl -fsS --retry ${env.config.health?.attempts ?? 10} ${env.config.health?.url ?? '<health url>'}`,
    when: (_p, env) => Boolean(env.config.health),
    run: (ctx) => checkHealth(ctx),
  };
}
