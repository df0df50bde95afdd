import { StepError, UsageError } from '../../core/errors.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';

export interface CircuitBreakerParams {
  action: 'enable' | 'disable';
}

interface BreakerState {
  enabled: boolean | null;
}

function endpoint(ctx: Pick<StepContext<CircuitBreakerParams>, 'env' | 'clients'>, suffix = ''): { url: string; headers: Record<string, string> } {
  const cb = ctx.env.config.circuitBreaker!;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (cb.token) headers.authorization = `Bearer ${ctx.clients.secret(cb.token, `environments.${ctx.env.name}.circuitBreaker.token`)}`;
  return { url: `${cb.url.replace(/\/+$/, '')}${suffix}`, headers };
}

async function readState(ctx: Pick<StepContext<CircuitBreakerParams>, 'env' | 'clients' | 'signal'>): Promise<BreakerState> {
  const { url, headers } = endpoint(ctx);
  const res = await ctx.clients.http.request(url, { headers, signal: ctx.signal });
  if (res.status === 404 || res.status === 405) return { enabled: null };
  if (res.status >= 400) throw new StepError(`${url} answered HTTP ${res.status}`);
  try {
    const body = JSON.parse(res.text) as { enabled?: unknown; state?: unknown };
    if (typeof body.enabled === 'boolean') return { enabled: body.enabled };
    if (body.state === 'open' || body.state === 'closed') return { enabled: body.state === 'open' };
  } catch {
    /* not JSON: state unknown */
  }
  return { enabled: null };
}

async function post(ctx: Pick<StepContext<CircuitBreakerParams>, 'env' | 'clients' | 'signal'>, action: 'enable' | 'disable'): Promise<void> {
  const cb = ctx.env.config.circuitBreaker!;
  const { url, headers } = endpoint(ctx, `/${action}`);
  const res = await ctx.clients.http.request(url, { method: cb.method, headers, signal: ctx.signal });
  if (res.status < 200 || res.status >= 300) throw new StepError(`${cb.method} ${url} answered HTTP ${res.status}`, res.text.slice(0, 200) || undefined);
}

const step = stepFor<CircuitBreakerParams>();

const breaker = step({
  id: 'state',
  title: 'Read the circuit breaker state',
  why: 'To know whether anything needs to change, and what to put back.',
  risk: 'read',
  equivalent: (_p, env) => `curl -fsS ${env.config.circuitBreaker?.url}`,
  run: (ctx) => readState(ctx),
  postcondition: {
    describe: 'the recorded state is the one to put back (the breaker is still in it, or in the state this run set)',
    // A read: reading again is safe, and a failed switch must put back what is there now.
    async check(ctx, recorded) {
      const live = (await readState(ctx)).enabled;
      if (live === recorded.enabled || (ctx.find(switchBreaker) && live === (ctx.params.action === 'enable'))) return { holds: true };
      return { holds: false, found: `the breaker is ${stateText(live)} now, ${stateText(recorded.enabled)} was recorded` };
    },
  },
});

const stateText = (enabled: boolean | null) => (enabled === null ? 'in an unknown state' : enabled ? 'enabled' : 'disabled');

const switchBreaker = step({
  id: 'switch',
  title: 'Switch the circuit breaker',
  why: 'An open breaker sheds calls to a failing dependency so the rest of the service stays up.',
  risk: 'write',
  equivalent: (p, env) => `curl -fsS -X ${env.config.circuitBreaker?.method ?? 'POST'} ${env.config.circuitBreaker?.url}/${p.action}`,
  async plan(ctx) {
    const before = ctx.get(breaker).enabled;
    const want = ctx.params.action === 'enable';
    if (before === want) return [];
    return [
      {
        action: ctx.params.action,
        target: `circuit breaker at ${endpoint(ctx).url}`,
        before: before === null ? 'unknown' : before ? 'enabled' : 'disabled',
        after: want ? 'enabled' : 'disabled',
      },
    ];
  },
  async run(ctx) {
    await post(ctx, ctx.params.action);
    const after = await readState(ctx);
    if (after.enabled !== null && after.enabled !== (ctx.params.action === 'enable')) {
      throw new StepError(`the breaker still reports ${after.enabled ? 'enabled' : 'disabled'} after ${ctx.params.action}`);
    }
    return { previous: ctx.get(breaker).enabled, now: after.enabled };
  },
  async undo(ctx, data) {
    if (data.previous === null) return;
    await post(ctx, data.previous ? 'enable' : 'disable');
  },
  undoByHand: (ctx, data) =>
    `curl -X ${ctx.env.config.circuitBreaker?.method ?? 'POST'} ${ctx.env.config.circuitBreaker?.url}/${data.previous ? 'enable' : 'disable'}`,
  postcondition: {
    describe: 'the breaker reports the state asked for',
    // Enabling (or disabling) again is the run's own request, gated again: safe. A breaker that does not
    // report its state cannot be re-checked: switching it again is the only way to be sure.
    async check(ctx) {
      const live = (await readState(ctx)).enabled;
      const want = ctx.params.action === 'enable';
      return live === want ? { holds: true } : { holds: false, found: `the breaker is ${stateText(live)}, not ${want ? 'enabled' : 'disabled'}` };
    },
  },
});

export default defineProcedure<CircuitBreakerParams>({
  name: 'app circuit-breaker',
  summary: "Enable or disable the application's circuit breaker",
  seedFixes: [
    'The seed POSTs blindly and never checks the answer; this reads the breaker first, checks the HTTP status of the change, verifies the new state, and can put the old state back.',
  ],
  params: [
    {
      name: 'action',
      argument: '<enable|disable>',
      description: 'enable or disable the breaker',
      type: 'string',
      required: true,
      choices: ['enable', 'disable'],
    },
  ],
  examples: [['enable']],
  requires: ['circuitBreaker'],
  validate(p) {
    if (p.action !== 'enable' && p.action !== 'disable') throw new UsageError(`expected enable or disable, got "${String(p.action)}"`);
  },
  steps: [breaker, switchBreaker],
});
