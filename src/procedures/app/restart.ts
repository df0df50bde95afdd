import { lockTargets } from '../../core/lock.js';
import { defineProcedure, stepFor } from '../../core/procedure.js';
import { podStatusStep, recentLogsStep, deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';
import { healthStep } from '../shared/health.js';

export interface AppRestartParams {
  rolloutTimeout?: number;
}

const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

const step = stepFor<AppRestartParams>();

const status = podStatusStep<AppRestartParams>();

const restart = step({
  id: 'restart',
  title: 'Restart the deployment (rolling)',
  why: 'Stamping the pod template with restartedAt makes Kubernetes replace pods one by one, keeping the service up — exactly what `kubectl rollout restart` does.',
  risk: 'write',
  equivalent: (_p, env) => `kubectl rollout restart deployment/${deploymentName(env)} -n ${ns(env)}`,
  async plan(ctx) {
    const kube = await ctx.clients.kube();
    const at = ctx.now().toISOString();
    await kube.patchDeployment(deploymentName(ctx.env), restartPatch(at), 'strategic', { dryRun: true });
    return [{ action: 'restart', target: `deployment/${deploymentName(ctx.env)}`, after: `${RESTARTED_AT}=${at}`, validated: true }];
  },
  async run(ctx) {
    const kube = await ctx.clients.kube();
    const at = ctx.now().toISOString();
    const d = await kube.patchDeployment(deploymentName(ctx.env), restartPatch(at), 'strategic');
    return { restartedAt: at, generation: d.metadata?.generation };
  },
  postcondition: {
    describe: 'the pod template carries the restart stamp this run set',
    // Another rolling restart is what the run was asked for (gated again): safe. A template that lost the
    // stamp (a rollback, a re-apply) no longer runs the restarted pods.
    async check(ctx, data) {
      const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
      const stamp = d.spec?.template.metadata?.annotations?.[RESTARTED_AT];
      return stamp === data.restartedAt
        ? { holds: true }
        : {
            holds: false,
            found: `deployment/${deploymentName(ctx.env)} has ${stamp ? `${RESTARTED_AT}=${stamp}` : `no ${RESTARTED_AT}`}, not ${data.restartedAt}`,
          };
    },
  },
});

const rollout = watchRolloutStep<AppRestartParams>();
const health = healthStep<AppRestartParams>();
const logs = recentLogsStep<AppRestartParams>();

export default defineProcedure<AppRestartParams>({
  name: 'app restart',
  summary: 'Rolling restart of the deployment, then wait, health-check and show logs',
  seedFixes: [
    'The seed follows logs with `kubectl logs -f`, which never returns; this shows the last lines of the NEW pods and finishes.',
    'The seed never checks that the rollout finished before calling the health URL; this watches the rollout with the same rules as `kubectl rollout status`, with a time limit.',
    'The seed curls the health URL once; this retries with a limit, because new pods may need a moment.',
  ],
  params: [
    {
      name: 'rolloutTimeout',
      flag: '--rollout-timeout <duration>',
      description: "how long to wait for the rollout (default: the environment's rollout.timeout)",
      type: 'duration',
    },
  ],
  examples: [[]],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'patchDeployment', 'watchDeployment', 'listPods', 'listReplicaSets', 'readPodLog'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  steps: [status, restart, rollout, health, logs],
  render(run) {
    const l = run.find(logs);
    if (!l) return '';
    return l.pods.map((p) => [`==> ${p.pod} <==`, ...(p.error ? [`(could not read logs: ${p.error})`] : p.lines)].join('\n')).join('\n\n') + '\n';
  },
});

function restartPatch(at: string) {
  return { spec: { template: { metadata: { annotations: { [RESTARTED_AT]: at } } } } };
}
