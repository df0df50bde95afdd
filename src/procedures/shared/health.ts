import { StepError } from '../../core/errors.js';
import { parseDuration } from '../../core/duration.js';
import type { Step, StepContext } from '../../core/procedure.js';
import { sleep } from '../../core/sleep.js';

/** Polls a health URL until it answers the expected status, or the attempts run out. */
export interface Healthy {
  url: string;
  status: number;
  attempts: number;
  latencyMs: number;
}

export async function checkHealth<P>(ctx: StepContext<P>): Promise<Healthy> {
  const h = ctx.env.config.health!;
  const interval = parseDuration(h.interval);
  const timeout = parseDuration(h.timeout);
  let lastProblem = '';
  for (let attempt = 1; attempt <= h.attempts; attempt++) {
    const t0 = performance.now();
    try {
      const res = await ctx.clients.http.request(h.url, { timeoutMs: timeout, signal: ctx.signal });
      const latencyMs = Math.round(performance.now() - t0);
      if (res.status === h.expectStatus) return { url: h.url, status: res.status, attempts: attempt, latencyMs };
      lastProblem = `HTTP ${res.status}`;
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      lastProblem = (err as Error).message;
    }
    ctx.log(`health attempt ${attempt}/${h.attempts}: ${lastProblem}`);
    if (attempt < h.attempts) await sleep(interval, ctx.signal);
  }
  throw new StepError(`${h.url} not healthy after ${h.attempts} attempts: ${lastProblem}`, `check it by hand: curl -fsS ${h.url}`);
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
