import { lockTargets } from '../../core/lock.js';
import { defineProcedure, stepFor } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';
import { changeEnvStep, readEnvStep } from '../shared/env-vars.js';
import { dependencyHealthStep, servicePodsStep } from './checks.js';
import { MAINTENANCE_VAR } from './maintenance.js';
import { curlIncident, type IncidentRef } from './statuspage.js';

export interface OutageStartParams {
  title: string;
  message: string;
  container?: string;
  rolloutTimeout?: number;
}

const step = stepFor<OutageStartParams>();

const incident = step({
  id: 'incident',
  title: 'Open an incident on the status page',
  why: 'Users and support learn about the outage from the status page first; the incident id is journaled so `outage recover` can resolve it.',
  risk: 'write',
  when: (_p, env) => Boolean(env.config.statuspage),
  equivalent: (p, env) => curlIncident(env, 'POST', '/incidents', { incident: { name: p.title, status: 'investigating', body: p.message } }),
  plan: async (ctx) => [
    { action: 'open incident on', target: `status page ${ctx.env.config.statuspage!.url}`, after: `"${ctx.params.title}" (investigating)` },
  ],
  async run(ctx): Promise<IncidentRef> {
    const opened = await (await ctx.clients.statuspage()).createIncident(ctx.params.title, ctx.params.message, ctx.signal);
    ctx.log(`incident ${opened.id} opened${opened.shortlink ? `: ${opened.shortlink}` : ''}`);
    return opened;
  },
  async undo(ctx, data) {
    await (
      await ctx.clients.statuspage()
    ).updateIncident(data.id, 'resolved', `Opened in error: runbook outage start (run ${ctx.runId}) did not complete and took it back.`, ctx.signal);
  },
  undoByHand: (ctx, data) => curlIncident(ctx.env, 'PATCH', `/incidents/${data.id}`, { incident: { status: 'resolved', body: 'Opened in error.' } }),
  postcondition: {
    describe: 'the incident this run opened is still open',
    // Opening it again would be a second incident for the same outage: someone resolved this one, and a person decides.
    unsafeToRerun: (ctx) =>
      `someone closed the incident while the run was stopped; if the outage is still on, reopen it on the status page, or run outage start -e ${ctx.env.name} again`,
    async check(ctx, data) {
      const inc = await (await ctx.clients.statuspage()).getIncident(data.id, ctx.signal);
      return inc.status === 'resolved' || inc.status === 'postmortem'
        ? { holds: false, found: `incident ${inc.id} "${inc.name}" is ${inc.status}` }
        : { holds: true };
    },
  },
});

const services = servicePodsStep<OutageStartParams>();
const dependencies = dependencyHealthStep<OutageStartParams>();
const current = readEnvStep<OutageStartParams>();
const apply = changeEnvStep<OutageStartParams>({
  title: 'Turn maintenance mode on',
  why: 'The app answers with a maintenance page instead of errors while the cause is found; it is an environment variable, so pods roll.',
  current,
  change: () => ({ set: [{ key: MAINTENANCE_VAR, value: 'true' }], unset: [] }),
  equivalent: (_p, env) => `kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} ${MAINTENANCE_VAR}=true`,
});
const rollout = watchRolloutStep<OutageStartParams>();

export default defineProcedure<OutageStartParams>({
  name: 'outage start',
  summary: 'Open a status-page incident, list pods per service, check dependencies, then turn maintenance mode on',
  seedFixes: [
    "The seed posts to /v1/incidents (no page) and never keeps the id; this posts to the page's /incidents and records the incident id in the journal, where `outage recover` finds it to resolve it.",
    'If a later step fails, the incident is not left open by mistake: it is resolved with a note that it was opened in error.',
    "Services and dependencies are checked in parallel, each dependency with a time limit (the seed's `curl -I` could hang, and HEAD is not what health URLs answer).",
    'Maintenance mode is shown before → after, the rollout it causes is watched, and the previous environment is put back if it does not complete.',
  ],
  params: [
    { name: 'title', flag: '--title <text>', description: 'incident name on the status page', type: 'string', default: 'Service Outage' },
    {
      name: 'message',
      flag: '--message <text>',
      description: 'first incident update',
      type: 'string',
      default: 'We are investigating an outage and will post updates here.',
    },
    {
      name: 'container',
      flag: '--container <name>',
      description: "container to put in maintenance mode (default: the only one, or the environment's)",
      type: 'k8sName',
    },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the maintenance-mode rollout', type: 'duration' },
  ],
  examples: [[], ['--title', 'Checkout unavailable', '--message', 'Payments are failing; we are on it.']],
  requires: ['kubernetes'],
  secrets: ['statuspage'],
  kube: ['getDeployment', 'patchDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  steps: [incident, services, dependencies, current, apply, rollout],
  render(run) {
    const parts: string[] = [];
    const inc = run.find(incident);
    if (inc) parts.push(`incident ${inc.id} "${inc.name}": ${inc.status}${inc.shortlink ? ` ${inc.shortlink}` : ''}\n`);
    const s = run.find(services);
    if (s)
      parts.push(
        table(
          ['SERVICE', 'READY', 'NOT READY'],
          s.services.map((x) => [x.service, `${x.ready}/${x.pods}`, x.notReady.join(', ')]),
        ),
      );
    const d = run.find(dependencies);
    if (d)
      parts.push(
        table(
          ['DEPENDENCY', 'OK', 'STATUS', 'LATENCY'],
          d.dependencies.map((x) => [x.name, x.ok ? 'yes' : 'NO', x.error ?? String(x.status), `${x.latencyMs}ms`]),
        ),
      );
    if (run.find(apply)) parts.push(`maintenance mode on (${MAINTENANCE_VAR}=true)\n`);
    return parts.join('\n');
  },
});
