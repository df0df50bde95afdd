import { lockTargets } from '../../core/lock.js';
import { CheckFailedError, StepError, UsageError } from '../../core/errors.js';
import { journalDir, listRuns, readRun } from '../../core/journal.js';
import { formatDuration, parseDuration } from '../../core/duration.js';
import { defineProcedure, type StepContext } from '../../core/procedure.js';
import { parseInteger } from '../../core/params.js';
import { sleep } from '../../core/sleep.js';
import { table } from '../../core/table.js';
import { deploymentName, ns } from '../shared/pods.js';
import { rolloutTimeout, waitForRollout, watchRolloutStep } from '../shared/rollout.js';
import { changeEnvStep, readEnvStep } from '../shared/env-vars.js';
import { curlIncident, getIncident, incidentFromJournal, updateIncident, type IncidentRef } from './statuspage.js';
import { MAINTENANCE_VAR } from './start.js';

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

interface StageResult {
  replicas: number;
  rolloutMs: number;
  healthAttempts: number;
}

interface FoundIncident {
  incident: IncidentRef | null;
  source: 'flag' | 'journal' | 'none';
  fromRun?: string;
}

/** What says an outage is open: --incident, the journal (an `outage start` not followed by a completed recovery), or maintenance mode on. */
interface OpenOutage {
  evidence: 'flag' | 'journal' | 'maintenance';
  fromRun?: string;
}

/**
 * The newest real `outage start` in this environment that changed something (and was not taken back),
 * unless a real `outage recover` completed after it: then that outage is closed.
 */
export async function openOutageInJournal(ctx: Pick<StepContext<unknown>, 'env' | 'io' | 'runId'>): Promise<string | null> {
  const dir = journalDir(ctx.io.env, ctx.env.journalDir);
  const runs = (await listRuns(dir)).filter((r) => r.environment === ctx.env.name && r.dryRun === 'off' && r.runId !== ctx.runId).reverse();
  for (const run of runs) {
    if (run.procedure === 'outage recover' && run.exitCode === 0) return null;
    if (run.procedure !== 'outage start') continue;
    const events = await readRun(dir, run.runId).catch(() => []);
    const changed = events.some(
      (e) => e.type === 'step-end' && (e.step === 'incident' || e.step === 'apply') && e.status === 'succeeded' && !events.some((c) => c.type === 'compensation' && c.step === e.step && c.status === 'succeeded'),
    );
    if (changed) return run.runId;
  }
  return null;
}

/** Polls the health URL until it answers as expected, for at most `limitMs`. */
async function healthyWithin(ctx: StepContext<unknown>, limitMs: number): Promise<{ ok: boolean; attempts: number; problem: string }> {
  const h = ctx.env.config.health;
  if (!h) return { ok: true, attempts: 0, problem: '' };
  const every = parseDuration(h.interval);
  const deadline = performance.now() + limitMs;
  let attempts = 0;
  let problem = '';
  for (;;) {
    attempts++;
    try {
      const res = await ctx.clients.http.request(h.url, { timeoutMs: Math.min(parseDuration(h.timeout), Math.max(1, Math.ceil(deadline - performance.now()))), signal: ctx.signal });
      if (res.status === h.expectStatus) return { ok: true, attempts, problem: '' };
      problem = `HTTP ${res.status}`;
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      problem = (err as Error).message;
    }
    if (performance.now() + every > deadline) return { ok: false, attempts, problem };
    await sleep(every, ctx.signal);
  }
}

/** The lines of the one approval: what comes back, in what order, and what is resolved. */
function recoverSummary(ctx: StepContext<OutageRecoverParams>): string[] {
  const name = deploymentName(ctx.env);
  const from = (ctx.state.replicas as { replicas: number } | undefined)?.replicas ?? 0;
  const stages = stagesOf(ctx.params).filter((n) => n > from);
  const inc = (ctx.state['find-incident'] as FoundIncident | undefined)?.incident;
  const lines = [
    stages.length ? `scale deployment/${name} ${from} → ${stages.join(' → ')}, each stage healthy within ${formatDuration(ctx.params.interval)} (stops at the first that is not, keeping the count)` : `deployment/${name} already at ${from}: no scaling`,
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
    { name: 'incident', flag: '--incident <id>', description: 'status-page incident to resolve (default: the one the last outage start recorded)', type: 'string' },
    { name: 'container', flag: '--container <name>', description: 'container whose maintenance mode is turned off', type: 'k8sName' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long each stage\'s rollout may take', type: 'duration' },
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
    if (stages[stages.length - 1] > max) throw new UsageError(`--steps goes to ${stages[stages.length - 1]}, above this environment's limit of ${max}`, `raise environments.${env.name}.limits.maxReplicas if that is really intended`);
    if (p.interval < 1000) throw new UsageError('--interval must be at least 1s');
    if (p.incident !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(p.incident)) throw new UsageError(`invalid --incident "${p.incident}"`, 'a status-page incident id: letters, digits, - and _');
  },
  // Every step puts back what the outage took away: one confirmation for all of it (in a protected
  // environment), after the read steps found the counts and the incident, instead of one per step.
  approval: { summary: recoverSummary },
  steps: [
    {
      id: 'outage',
      title: 'Check that an outage is open',
      why: 'Recovery scales up and turns maintenance mode off: without an open outage (none recorded by `outage start`, maintenance mode off, no --incident) it would only scale a healthy app up, so it stops here (exit 4).',
      risk: 'read',
      equivalent: (_p, env) => `runbook history  # the last "outage start" in ${env.name}; and: kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} --list | grep ${MAINTENANCE_VAR}`,
      async run(ctx): Promise<OpenOutage> {
        if (ctx.params.incident) return { evidence: 'flag' };
        const fromRun = await openOutageInJournal(ctx as StepContext<unknown>);
        if (fromRun) return { evidence: 'journal', fromRun };
        const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
        if ((d.spec?.template.spec?.containers ?? []).some((c) => (c.env ?? []).some((e) => e.name === MAINTENANCE_VAR))) return { evidence: 'maintenance' };
        throw new CheckFailedError(
          `no open outage in ${ctx.env.name}: no "outage start" in the journal since the last completed recovery, ${MAINTENANCE_VAR} is not set on deployment/${deploymentName(ctx.env)}, and no --incident was given; nothing was changed`,
          `to change the replica count anyway: runbook app scale --replicas <n> -e ${ctx.env.name}; to resolve an incident opened elsewhere: runbook outage recover --incident <id> -e ${ctx.env.name}`,
        );
      },
    },
    {
      id: 'replicas',
      title: 'Record the current replica count',
      why: 'Stages at or below the current count are skipped, and a failure reports where it stopped.',
      risk: 'read',
      equivalent: (_p, env) => `kubectl get deployment/${deploymentName(env)} -n ${ns(env)} -o jsonpath='{.spec.replicas} {.status.readyReplicas}'`,
      async run(ctx) {
        const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
        return { replicas: d.spec?.replicas ?? 0, ready: d.status?.readyReplicas ?? 0 };
      },
    },
    {
      id: 'find-incident',
      title: 'Find the status-page incident to resolve',
      why: '`outage start` journaled the incident it opened; reading it back means nobody has to copy ids around at 3 a.m.',
      risk: 'read',
      when: (_p, env) => Boolean(env.config.statuspage),
      equivalent: (p, env) => (p.incident ? curlIncident(env, 'GET', `/incidents/${p.incident}`) : 'runbook history  # the last "outage start" run, then: runbook show <run-id>'),
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
        const incident = await getIncident(ctx, id);
        ctx.log(`incident ${incident.id} "${incident.name}" is ${incident.status}${fromRun ? ` (opened by run ${fromRun})` : ''}`);
        return { incident, source: ctx.params.incident ? 'flag' : 'journal', fromRun };
      },
    },
    {
      id: 'scale',
      title: 'Scale up in stages, checking health between',
      why: 'Bringing all pods back at once can knock a recovering database or cache over again; each stage must be rolled out and healthy before the next.',
      risk: 'write',
      equivalent: (p, env) =>
        stagesOf(p)
          .map((n) => `kubectl scale deployment/${deploymentName(env)} --replicas=${n} -n ${ns(env)} && kubectl rollout status deployment/${deploymentName(env)} -n ${ns(env)} && curl -fsS --retry 10 ${env.config.health?.url ?? '<health url>'}`)
          .join(' && '),
      async plan(ctx) {
        const from = (ctx.state.replicas as { replicas: number }).replicas;
        const stages = stagesOf(ctx.params).filter((n) => n > from);
        if (!stages.length) return [];
        const kube = await ctx.clients.kube();
        await kube.scaleDeployment(deploymentName(ctx.env), stages[stages.length - 1], { dryRun: true });
        return [{ action: 'scale in stages', target: `deployment/${deploymentName(ctx.env)}`, before: String(from), after: `${stages.join(' → ')} (each healthy within ${formatDuration(ctx.params.interval)})`, validated: true }];
      },
      async run(ctx) {
        const from = (ctx.state.replicas as { replicas: number }).replicas;
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
            rollout = await waitForRollout(ctx as StepContext<unknown>, name, rolloutTimeout(ctx as StepContext<unknown>));
          } catch (err) {
            if (ctx.signal.aborted) throw ctx.signal.reason;
            throw stop((err as Error).message);
          }
          const h = await healthyWithin(ctx as StepContext<unknown>, ctx.params.interval);
          if (!h.ok) throw stop(`${ctx.env.config.health!.url} not healthy within ${formatDuration(ctx.params.interval)} (${h.attempts} attempts): ${h.problem}`);
          healthy = n;
          done.push({ replicas: n, rolloutMs: rollout.waitedMs, healthAttempts: h.attempts });
        }
        return { from, reached: healthy, stages: done };
      },
    },
    readEnvStep(),
    changeEnvStep({
      title: 'Turn maintenance mode off',
      why: 'With the app healthy at full strength, users get the app again instead of the maintenance page.',
      change: () => ({ set: [], unset: [MAINTENANCE_VAR] }),
      equivalent: (_p, env) => `kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} ${MAINTENANCE_VAR}-`,
    }),
    watchRolloutStep(),
    {
      id: 'resolve',
      title: 'Resolve the status-page incident',
      why: 'The outage is over only when users are told so.',
      risk: 'write',
      when: (_p, env) => Boolean(env.config.statuspage),
      equivalent: (p, env) => curlIncident(env, 'PATCH', `/incidents/${p.incident ?? '<id from the journal>'}`, { incident: { status: 'resolved' } }),
      async plan(ctx) {
        const found = ctx.state['find-incident'] as FoundIncident | undefined;
        const inc = found?.incident;
        if (!inc || inc.status === 'resolved' || inc.status === 'postmortem') return [];
        return [{ action: 'resolve incident', target: `${inc.id} "${inc.name}"`, before: inc.status, after: 'resolved' }];
      },
      async run(ctx) {
        const inc = (ctx.state['find-incident'] as FoundIncident).incident!;
        const updated = await updateIncident(ctx, inc.id, 'resolved', 'The service has recovered.');
        return { id: inc.id, previous: inc.status, status: updated.status };
      },
      async undo(ctx, data) {
        const d = data as { id: string; previous: string };
        await updateIncident(ctx, d.id, d.previous, 'Reopened: the recovery did not complete.');
      },
      undoByHand: (ctx, data) => curlIncident(ctx.env, 'PATCH', `/incidents/${(data as { id: string }).id}`, { incident: { status: (data as { previous: string }).previous } }),
    },
  ],
  render(state) {
    const parts: string[] = [];
    const s = state.scale as { from: number; reached: number; stages: StageResult[] } | undefined;
    if (s) parts.push(table(['REPLICAS', 'ROLLOUT', 'HEALTH CHECKS'], s.stages.map((x) => [String(x.replicas), formatDuration(x.rolloutMs), String(x.healthAttempts)])));
    if (state.apply) parts.push('maintenance mode off\n');
    const r = state.resolve as { id: string; status: string } | undefined;
    if (r) parts.push(`incident ${r.id}: ${r.status}\n`);
    return parts.join('\n');
  },
});
