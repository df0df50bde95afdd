import { lockTargets } from '../../core/lock.js';
import { CheckFailedError, StepError, UsageError } from '../../core/errors.js';
import { formatDuration } from '../../core/duration.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { parseInteger } from '../../core/params.js';
import { table } from '../../core/table.js';
import { pollHealth } from '../shared/health.js';
import { deploymentName, ns } from '../shared/pods.js';
import { rolloutTimeout, waitForRollout, watchRolloutStep } from '../shared/rollout.js';
import { changeEnvStep, readEnvStep } from '../shared/env-vars.js';
import { curlIncident, incidentFromJournal, type IncidentRef } from './statuspage.js';
import { MAINTENANCE_VAR } from './maintenance.js';

export interface OutageRecoverParams {
  steps?: string[];
  interval: number;
  incident?: string;
  container?: string;
  rolloutTimeout?: number;
}

const DEFAULT_STAGES = [1, 2, 4];

/** The replica counts to go through, ascending. */
export function stagesOf(p: OutageRecoverParams): number[] {
  return p.steps ? p.steps.map((s) => parseInteger(s, '--steps', 1)) : DEFAULT_STAGES;
}

export interface StageResult {
  replicas: number;
  rolloutMs: number;
  healthAttempts: number;
}

export interface FoundIncident {
  incident: IncidentRef | null;
  source: 'flag' | 'journal' | 'none';
  fromRun?: string;
}

/** What says an outage is open: --incident, the journal (an `outage start` not followed by a completed recovery), or maintenance mode on. */
export interface OpenOutage {
  evidence: 'flag' | 'journal' | 'maintenance';
  fromRun?: string;
}

/**
 * The newest real `outage start` in this environment that changed something (and was not taken back),
 * unless a real `outage recover` completed after it: then that outage is closed.
 */
export async function openOutageInJournal(ctx: Pick<StepContext<unknown>, 'env' | 'journal'>): Promise<string | null> {
  // The newest real outage start whose incident or maintenance mode still stands, unless a recovery completed since.
  const run = await ctx.journal.lastEffective('outage start', {
    env: ctx.env.name,
    steps: ['incident', 'apply'],
    closedBy: { procedure: 'outage recover', where: (r) => r.exitCode === 0 },
  });
  return run?.runId ?? null;
}

/** Polls the health URL until it answers as expected, for at most `limitMs`. */
async function healthyWithin<P>(
  ctx: Pick<StepContext<P>, 'env' | 'clients' | 'signal'>,
  limitMs: number,
): Promise<{ ok: boolean; attempts: number; problem: string }> {
  const h = ctx.env.config.health;
  if (!h) return { ok: true, attempts: 0, problem: '' };
  const r = await pollHealth(ctx, { url: h.url, expectStatus: h.expectStatus, interval: h.interval, timeout: h.timeout, withinMs: limitMs });
  return r.healthy ? { ok: true, attempts: r.attempts, problem: '' } : { ok: false, attempts: r.attempts, problem: r.problem };
}

const step = stepFor<OutageRecoverParams>();

const outage = step({
  id: 'outage',
  title: 'Check that an outage is open',
  why: 'Recovery scales up and turns maintenance mode off: without an open outage (none recorded by `outage start`, maintenance mode off, no --incident) it would only scale a healthy app up, so it stops here (exit 4).',
  risk: 'read',
  equivalent: (_p, env) =>
    `runbook history  # the last "outage start" in ${env.name}; and: kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} --list | grep ${MAINTENANCE_VAR}`,
  async run(ctx): Promise<OpenOutage> {
    if (ctx.params.incident) return { evidence: 'flag' };
    const fromRun = await openOutageInJournal(ctx);
    if (fromRun) return { evidence: 'journal', fromRun };
    const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
    if ((d.spec?.template.spec?.containers ?? []).some((c) => (c.env ?? []).some((e) => e.name === MAINTENANCE_VAR))) return { evidence: 'maintenance' };
    throw new CheckFailedError(
      `no open outage in ${ctx.env.name}: no "outage start" in the journal since the last completed recovery, ${MAINTENANCE_VAR} is not set on deployment/${deploymentName(ctx.env)}, and no --incident was given; nothing was changed`,
      `to change the replica count anyway: runbook app scale --replicas <n> -e ${ctx.env.name}; to resolve an incident opened elsewhere: runbook outage recover --incident <id> -e ${ctx.env.name}`,
    );
  },
});

const replicas = step({
  id: 'replicas',
  title: 'Record the current replica count',
  why: 'Stages at or below the current count are skipped, and a failure reports where it stopped.',
  risk: 'read',
  equivalent: (_p, env) => `kubectl get deployment/${deploymentName(env)} -n ${ns(env)} -o jsonpath='{.spec.replicas} {.status.readyReplicas}'`,
  async run(ctx) {
    const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
    return { replicas: d.spec?.replicas ?? 0, ready: d.status?.readyReplicas ?? 0 };
  },
  postcondition: {
    describe: 'the recorded count is the current one (or the stages of this run raised it)',
    // A read: reading again is safe, and the stages must start above what runs now (recovery never scales down).
    async check(ctx, r) {
      const live = await liveReplicas(ctx);
      const reached = ctx.find(scale)?.reached;
      if (live === r.replicas || (reached !== undefined && live >= reached)) return { holds: true };
      return { holds: false, found: `deployment/${deploymentName(ctx.env)} has ${live} replica(s) now, ${r.replicas} were recorded` };
    },
  },
});

const findIncident = step({
  id: 'find-incident',
  title: 'Find the status-page incident to resolve',
  why: '`outage start` journaled the incident it opened; reading it back means nobody has to copy ids around at 3 a.m.',
  risk: 'read',
  when: (_p, env) => Boolean(env.config.statuspage),
  equivalent: (p, env) =>
    p.incident ? curlIncident(env, 'GET', `/incidents/${p.incident}`) : 'runbook history  # the last "outage start" run, then: runbook show <run-id>',
  async run(ctx): Promise<FoundIncident> {
    let id = ctx.params.incident;
    let fromRun: string | undefined;
    if (!id) {
      const found = await incidentFromJournal(ctx);
      if (!found) {
        ctx.reporter.warn(`no open incident recorded by "outage start" in environment ${ctx.env.name}; nothing to resolve (pass --incident ID to name one)`);
        return { incident: null, source: 'none' };
      }
      id = found.incident.id;
      fromRun = found.runId;
    }
    const incident = await (await ctx.clients.statuspage()).getIncident(id, ctx.signal);
    ctx.log(`incident ${incident.id} "${incident.name}" is ${incident.status}${fromRun ? ` (opened by run ${fromRun})` : ''}`);
    return { incident, source: ctx.params.incident ? 'flag' : 'journal', fromRun };
  },
});

const scale = step({
  id: 'scale',
  title: 'Scale up in stages, checking health between',
  why: 'Bringing all pods back at once can knock a recovering database or cache over again; each stage must be rolled out and healthy before the next.',
  risk: 'write',
  equivalent: (p, env) =>
    stagesOf(p)
      .map(
        (n) =>
          `kubectl scale deployment/${deploymentName(env)} --replicas=${n} -n ${ns(env)} && kubectl rollout status deployment/${deploymentName(env)} -n ${ns(env)} && curl -fsS --retry 10 ${env.config.health?.url ?? '<health url>'}`,
      )
      .join(' && '),
  async plan(ctx) {
    const from = ctx.get(replicas).replicas;
    const stages = stagesOf(ctx.params).filter((n) => n > from);
    if (!stages.length) return [];
    const kube = await ctx.clients.kube();
    await kube.scaleDeployment(deploymentName(ctx.env), stages[stages.length - 1], { dryRun: true });
    return [
      {
        action: 'scale in stages',
        target: `deployment/${deploymentName(ctx.env)}`,
        before: String(from),
        after: `${stages.join(' → ')} (each healthy within ${formatDuration(ctx.params.interval)})`,
        validated: true,
      },
    ];
  },
  async run(ctx) {
    const from = ctx.get(replicas).replicas;
    const stages = stagesOf(ctx.params).filter((n) => n > from);
    const kube = await ctx.clients.kube();
    const name = deploymentName(ctx.env);
    const done: StageResult[] = [];
    let healthy = from;
    for (const [k, n] of stages.entries()) {
      const remaining = stages.slice(k).join(',');
      const stop = (problem: string) =>
        new StepError(
          `outage recover stopped at ${n} replicas (stage ${k + 1} of ${stages.length}): ${problem}; the count is kept, maintenance mode stays on and the incident stays open`,
          `fix the cause, then: runbook outage recover --steps ${remaining}${healthy !== n ? `  (last healthy at ${healthy}: runbook app scale --replicas ${healthy} to go back)` : ''}`,
        );
      await kube.scaleDeployment(name, n);
      ctx.log(`stage ${k + 1}/${stages.length}: ${n} replica${n === 1 ? '' : 's'}`);
      let rollout;
      try {
        rollout = await waitForRollout(ctx, name, rolloutTimeout(ctx));
      } catch (err) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        throw stop((err as Error).message);
      }
      const h = await healthyWithin(ctx, ctx.params.interval);
      if (!h.ok) throw stop(`${ctx.env.config.health!.url} not healthy within ${formatDuration(ctx.params.interval)} (${h.attempts} attempts): ${h.problem}`);
      healthy = n;
      done.push({ replicas: n, rolloutMs: rollout.waitedMs, healthAttempts: h.attempts });
    }
    return { from, reached: healthy, stages: done };
  },
  postcondition: {
    describe: 'the deployment is at least at the count the stages reached',
    // Scaling up again in stages (from what runs now, with the health checks between) restores service: safe.
    async check(ctx, data) {
      const live = await liveReplicas(ctx);
      return live >= data.reached
        ? { holds: true }
        : { holds: false, found: `deployment/${deploymentName(ctx.env)} has ${live} replica(s), ${data.reached} were reached` };
    },
  },
});

async function liveReplicas(ctx: Pick<StepContext<OutageRecoverParams>, 'clients' | 'env'>): Promise<number> {
  const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
  return d.spec?.replicas ?? 0;
}

const current = readEnvStep<OutageRecoverParams>();
const apply = changeEnvStep<OutageRecoverParams>({
  title: 'Turn maintenance mode off',
  why: 'With the app healthy at full strength, users get the app again instead of the maintenance page.',
  current,
  change: () => ({ set: [], unset: [MAINTENANCE_VAR] }),
  equivalent: (_p, env) => `kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} ${MAINTENANCE_VAR}-`,
});
const rollout = watchRolloutStep<OutageRecoverParams>();

const resolve = step({
  id: 'resolve',
  title: 'Resolve the status-page incident',
  why: 'The outage is over only when users are told so.',
  risk: 'write',
  when: (_p, env) => Boolean(env.config.statuspage),
  equivalent: (p, env) => curlIncident(env, 'PATCH', `/incidents/${p.incident ?? '<id from the journal>'}`, { incident: { status: 'resolved' } }),
  async plan(ctx) {
    const inc = ctx.find(findIncident)?.incident;
    if (!inc || inc.status === 'resolved' || inc.status === 'postmortem') return [];
    return [{ action: 'resolve incident', target: `${inc.id} "${inc.name}"`, before: inc.status, after: 'resolved' }];
  },
  async run(ctx) {
    // Runs only when the plan found an open incident.
    const inc = ctx.get(findIncident).incident!;
    const updated = await (await ctx.clients.statuspage()).updateIncident(inc.id, 'resolved', 'The service has recovered.', ctx.signal);
    return { id: inc.id, previous: inc.status, status: updated.status };
  },
  async undo(ctx, data) {
    await (await ctx.clients.statuspage()).updateIncident(data.id, data.previous, 'Reopened: the recovery did not complete.', ctx.signal);
  },
  undoByHand: (ctx, data) => curlIncident(ctx.env, 'PATCH', `/incidents/${data.id}`, { incident: { status: data.previous } }),
  postcondition: {
    describe: 'the incident is resolved',
    // Resolving it again is the same PATCH: safe.
    async check(ctx, data) {
      const inc = await (await ctx.clients.statuspage()).getIncident(data.id, ctx.signal);
      return inc.status === 'resolved' || inc.status === 'postmortem' ? { holds: true } : { holds: false, found: `incident ${inc.id} is ${inc.status}` };
    },
  },
});

/** The lines of the one approval: what comes back, in what order, and what is resolved. */
function recoverSummary(ctx: StepContext<OutageRecoverParams>): string[] {
  const name = deploymentName(ctx.env);
  const from = ctx.find(replicas)?.replicas ?? 0;
  const stages = stagesOf(ctx.params).filter((n) => n > from);
  const inc = ctx.find(findIncident)?.incident;
  const lines = [
    stages.length
      ? `scale deployment/${name} ${from} → ${stages.join(' → ')}, each stage healthy within ${formatDuration(ctx.params.interval)} (stops at the first that is not, keeping the count)`
      : `deployment/${name} already at ${from}: no scaling`,
    `turn maintenance mode off (${MAINTENANCE_VAR}), pods roll`,
  ];
  if (inc && inc.status !== 'resolved' && inc.status !== 'postmortem') lines.push(`resolve status-page incident ${inc.id} "${inc.name}"`);
  return lines;
}

export default defineProcedure<OutageRecoverParams>({
  name: 'outage recover',
  summary: 'Scale back up in stages with health checks between, turn maintenance mode off, resolve the incident `outage start` opened',
  seedFixes: [
    "The seed scales 1 → 2 → 4 with a blind `sleep 60` between; this waits for each stage's rollout and polls the health URL (at most --interval), and stops at the first stage that is not healthy.",
    'A stage below the current count is skipped: recovery never scales down.',
    'If a stage fails, the count reached is kept (scaling back down during an outage makes it worse) and the summary says exactly what to run next.',
    'The status-page incident is resolved too: the one the last `outage start` recorded in the journal, or --incident.',
  ],
  params: [
    { name: 'steps', flag: '--steps <counts>', description: 'replica counts to go through, ascending (default 1,2,4)', type: 'list' },
    { name: 'interval', flag: '--interval <duration>', description: 'how long each stage may take to become healthy', type: 'duration', default: '60s' },
    {
      name: 'incident',
      flag: '--incident <id>',
      description: 'status-page incident to resolve (default: the one the last outage start recorded)',
      type: 'string',
    },
    { name: 'container', flag: '--container <name>', description: 'container whose maintenance mode is turned off', type: 'k8sName' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: "how long each stage's rollout may take", type: 'duration' },
  ],
  examples: [[], ['--steps', '1,2,4,8', '--interval', '2m'], ['--incident', 'p31zjtct2jer']],
  requires: ['kubernetes'],
  secrets: ['statuspage'],
  kube: ['getDeployment', 'patchDeployment', 'scaleDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  validate(p, env) {
    const stages = stagesOf(p);
    if (!stages.length) throw new UsageError('--steps needs at least one replica count');
    for (let i = 1; i < stages.length; i++) if (stages[i] <= stages[i - 1]) throw new UsageError(`--steps must be ascending, got ${stages.join(',')}`);
    const max = env.config.limits.maxReplicas;
    if (stages[stages.length - 1] > max)
      throw new UsageError(
        `--steps goes to ${stages[stages.length - 1]}, above this environment's limit of ${max}`,
        `raise environments.${env.name}.limits.maxReplicas if that is really intended`,
      );
    if (p.interval < 1000) throw new UsageError('--interval must be at least 1s');
    if (p.incident !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(p.incident))
      throw new UsageError(`invalid --incident "${p.incident}"`, 'a status-page incident id: letters, digits, - and _');
  },
  // Every step puts back what the outage took away: one confirmation for all of it (in a protected
  // environment), after the read steps found the counts and the incident, instead of one per step.
  approval: { summary: recoverSummary },
  steps: [outage, replicas, findIncident, scale, current, apply, rollout, resolve],
  render(run) {
    const parts: string[] = [];
    const s = run.find(scale);
    if (s)
      parts.push(
        table(
          ['REPLICAS', 'ROLLOUT', 'HEALTH CHECKS'],
          s.stages.map((x) => [String(x.replicas), formatDuration(x.rolloutMs), String(x.healthAttempts)]),
        ),
      );
    if (run.find(apply)) parts.push('maintenance mode off\n');
    const r = run.find(resolve);
    if (r) parts.push(`incident ${r.id}: ${r.status}\n`);
    return parts.join('\n');
  },
});
