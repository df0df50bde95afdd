import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';
import { changeEnvStep, readEnvStep } from '../shared/env-vars.js';
import { dependencyHealthStep, servicePodsStep, type DependencyHealth } from './checks.js';
import { createIncident, curlIncident, updateIncident, type IncidentRef } from './statuspage.js';

export interface OutageStartParams {
  title: string;
  message: string;
  container?: string;
  rolloutTimeout?: number;
}

export const MAINTENANCE_VAR = 'MAINTENANCE_MODE';

export default defineProcedure<OutageStartParams>({
  name: 'outage start',
  summary: 'Open a status-page incident, list pods per service, check dependencies, then turn maintenance mode on',
  seedFixes: [
    'The seed posts to /v1/incidents (no page) and never keeps the id; this posts to the page\'s /incidents and records the incident id in the journal, where `outage recover` finds it to resolve it.',
    'If a later step fails, the incident is not left open by mistake: it is resolved with a note that it was opened in error.',
    'Services and dependencies are checked in parallel, each dependency with a time limit (the seed\'s `curl -I` could hang, and HEAD is not what health URLs answer).',
    'Maintenance mode is shown before → after, the rollout it causes is watched, and the previous environment is put back if it does not complete.',
  ],
  params: [
    { name: 'title', flag: '--title <text>', description: 'incident name on the status page', type: 'string', default: 'Service Outage' },
    { name: 'message', flag: '--message <text>', description: 'first incident update', type: 'string', default: 'We are investigating an outage and will post updates here.' },
    { name: 'container', flag: '--container <name>', description: 'container to put in maintenance mode (default: the only one, or the environment\'s)', type: 'k8sName' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the maintenance-mode rollout', type: 'duration' },
  ],
  examples: [[], ['--title', 'Checkout unavailable', '--message', 'Payments are failing; we are on it.']],
  requires: ['kubernetes'],
  secrets: ['statuspage'],
  kube: ['getDeployment', 'patchDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  steps: [
    {
      id: 'incident',
      title: 'Open an incident on the status page',
      why: 'Users and support learn about the outage from the status page first; the incident id is journaled so `outage recover` can resolve it.',
      risk: 'write',
      when: (_p, env) => Boolean(env.config.statuspage),
      equivalent: (p, env) => curlIncident(env, 'POST', '/incidents', { incident: { name: p.title, status: 'investigating', body: p.message } }),
      plan: async (ctx) => [{ action: 'open incident on', target: `status page ${ctx.env.config.statuspage!.url}`, after: `"${ctx.params.title}" (investigating)` }],
      async run(ctx): Promise<IncidentRef> {
        const incident = await createIncident(ctx, ctx.params.title, ctx.params.message);
        ctx.log(`incident ${incident.id} opened${incident.shortlink ? `: ${incident.shortlink}` : ''}`);
        return incident;
      },
      async undo(ctx, data) {
        await updateIncident(ctx, (data as IncidentRef).id, 'resolved', `Opened in error: runbook outage start (run ${ctx.runId}) did not complete and took it back.`);
      },
      undoByHand: (ctx, data) => curlIncident(ctx.env, 'PATCH', `/incidents/${(data as IncidentRef).id}`, { incident: { status: 'resolved', body: 'Opened in error.' } }),
    },
    servicePodsStep(),
    dependencyHealthStep(),
    readEnvStep(),
    changeEnvStep({
      title: 'Turn maintenance mode on',
      why: 'The app answers with a maintenance page instead of errors while the cause is found; it is an environment variable, so pods roll.',
      change: () => ({ set: [{ key: MAINTENANCE_VAR, value: 'true' }], unset: [] }),
      equivalent: (_p, env) => `kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} ${MAINTENANCE_VAR}=true`,
    }),
    watchRolloutStep(),
  ],
  render(state) {
    const parts: string[] = [];
    const inc = state.incident as IncidentRef | undefined;
    if (inc) parts.push(`incident ${inc.id} "${inc.name}": ${inc.status}${inc.shortlink ? ` ${inc.shortlink}` : ''}\n`);
    const s = state.services as { services: Array<{ service: string; pods: number; ready: number; notReady: string[] }> } | undefined;
    if (s) parts.push(table(['SERVICE', 'READY', 'NOT READY'], s.services.map((x) => [x.service, `${x.ready}/${x.pods}`, x.notReady.join(', ')])));
    const d = state.dependencies as { dependencies: DependencyHealth[] } | undefined;
    if (d) parts.push(table(['DEPENDENCY', 'OK', 'STATUS', 'LATENCY'], d.dependencies.map((x) => [x.name, x.ok ? 'yes' : 'NO', x.error ?? String(x.status), `${x.latencyMs}ms`])));
    if (state.apply) parts.push(`maintenance mode on (${MAINTENANCE_VAR}=true)\n`);
    return parts.join('\n');
  },
});
