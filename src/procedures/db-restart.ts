import { StepError } from '../core/errors.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { defineProcedure, type StepContext } from '../core/procedure.js';
import { announceStep } from './steps/notify.js';
import { deploymentName, ns } from './steps/pods.js';
import { watchRolloutStep, rolloutTimeout } from './steps/rollout.js';
import { rdsApi, rdsDatabaseRef, rdsDatabaseUrl, rdsOf, selectOneWithRetries } from './steps/db-common.js';

export interface DbRestartParams {
  waitTimeout?: number;
  rolloutTimeout?: number;
}

/** What the `record` step keeps in the journal: the count the app is put back to, even on resume. */
export interface RecordedReplicas {
  deployment: string;
  replicas: number;
  instance: string;
  instanceStatus: string;
}

const recorded = (ctx: StepContext<DbRestartParams>) => ctx.state.record as RecordedReplicas;
const scaleCmd = (ctx: Pick<StepContext<DbRestartParams>, 'env'>, n: number) => `kubectl scale deployment/${deploymentName(ctx.env)} --replicas=${n} -n ${ns(ctx.env)}`;

export default defineProcedure<DbRestartParams>({
  name: 'db restart',
  summary: 'Reboot the RDS instance with the app scaled to 0, then bring the app back to the count it had',
  seedFixes: [
    'The seed scales the app back to a hard-coded 4 replicas; this records the count first and restores exactly that (also on resume: the count comes from the journal).',
    'The seed has no way back: any failure or interrupt after the scale-down puts the recorded count back, and if even that fails the summary gives the exact kubectl command.',
    'The seed trusts `aws rds wait` alone; a rebooted instance can report available before it accepts connections, so SELECT 1 is retried with a time limit.',
    '"Coordinate with team" was a comment: this takes a Kubernetes Lease, so a second operator gets exit 6 naming who holds it and since when.',
    'The seed never waits for the app to come back; this watches the rollout and announces the end.',
  ],
  params: [
    { name: 'waitTimeout', flag: '--wait-timeout <duration>', description: "how long to wait for the instance to be available (default: the environment's rds.waitTimeout)", type: 'duration' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the app to come back', type: 'duration' },
  ],
  examples: [[], ['--wait-timeout', '30m']],
  requires: ['kubernetes', 'aws', 'rds'],
  kube: ['getDeployment', 'scaleDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  lock: true,
  steps: [
    announceStep<DbRestartParams>({
      id: 'announce',
      title: 'Announce the maintenance',
      message: ({ env, runId }) => `Database restart of ${env.config.rds?.instance} (${env.name}) starting now; the app will be down until it is back (runbook run ${runId}).`,
    }),
    {
      id: 'record',
      title: 'Record the current replicas and check the instance',
      why: 'The count is recorded (and journaled) so the app goes back to exactly what it had; the instance must exist and be available before anything is taken down.',
      risk: 'read',
      equivalent: (_p, env) =>
        `kubectl get deployment/${deploymentName(env)} -n ${ns(env)} -o jsonpath='{.spec.replicas}' && aws rds describe-db-instances --db-instance-identifier ${env.config.rds?.instance} --query 'DBInstances[0].DBInstanceStatus'`,
      async run(ctx): Promise<RecordedReplicas> {
        const kube = await ctx.clients.kube();
        const d = await kube.getDeployment(deploymentName(ctx.env));
        const replicas = d.spec?.replicas ?? 0;
        const rds = await rdsApi(ctx);
        const instance = await rds.requireInstance(rdsOf(ctx.env).instance, ctx.signal);
        if (instance.status !== 'available') {
          throw new StepError(`RDS instance ${instance.id} is "${instance.status}", not available; a reboot now would fail or stack on another operation`, `wait for it: aws rds wait db-instance-available --db-instance-identifier ${instance.id}`);
        }
        if (replicas === 0) ctx.reporter.warn(`deployment/${deploymentName(ctx.env)} already has 0 replicas; it will be left at 0`);
        ctx.log(`deployment/${deploymentName(ctx.env)} has ${replicas} replica(s); RDS ${instance.id} is ${instance.status}`);
        return { deployment: deploymentName(ctx.env), replicas, instance: instance.id, instanceStatus: instance.status };
      },
    },
    {
      id: 'scale-down',
      title: 'Scale the app to 0 (stop traffic to the database)',
      why: 'No client writes during the reboot, and no pool of dead connections afterwards.',
      risk: 'destructive',
      equivalent: (_p, env) => `kubectl scale deployment/${deploymentName(env)} --replicas=0 -n ${ns(env)}`,
      async plan(ctx) {
        const from = recorded(ctx).replicas;
        if (from === 0) return [];
        const kube = await ctx.clients.kube();
        await kube.scaleDeployment(deploymentName(ctx.env), 0, { dryRun: true });
        return [{ action: 'scale', target: `deployment/${deploymentName(ctx.env)}`, before: String(from), after: '0', validated: true }];
      },
      async run(ctx) {
        const kube = await ctx.clients.kube();
        await kube.scaleDeployment(deploymentName(ctx.env), 0);
        return { from: recorded(ctx).replicas, to: 0 };
      },
      async undo(ctx, data) {
        const kube = await ctx.clients.kube();
        await kube.scaleDeployment(deploymentName(ctx.env), (data as { from: number }).from);
      },
      undoByHand: (ctx, data) => scaleCmd(ctx, (data as { from: number }).from),
    },
    {
      id: 'drained',
      title: 'Wait for the app pods to stop',
      why: 'Scaling to 0 only asks; the reboot waits until no pod of the app is left to hold connections.',
      risk: 'read',
      followsWrite: true,
      equivalent: (_p, env) => `kubectl wait --for=delete pod -l ${env.config.kubernetes?.selector ?? `app=${env.config.kubernetes?.deployment}`} -n ${env.config.kubernetes?.namespace} --timeout=${env.config.rollout.timeout}`,
      plan: async (ctx) => [{ action: 'wait for 0 pods of', target: `deployment/${deploymentName(ctx.env)}`, after: `within ${formatDuration(rolloutTimeout(ctx as StepContext<unknown>))}` }],
      async run(ctx) {
        if (recorded(ctx).replicas === 0) return { waitedMs: 0 };
        const kube = await ctx.clients.kube();
        const t0 = performance.now();
        const timeoutMs = rolloutTimeout(ctx as StepContext<unknown>);
        const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
        let left = -1;
        let drained = false;
        await kube.watchDeployment(
          deploymentName(ctx.env),
          (ev) => {
            left = ev.object.status?.replicas ?? 0;
            drained = left === 0 && (ev.object.spec?.replicas ?? 0) === 0;
            return drained;
          },
          signal,
        );
        if (ctx.signal.aborted) throw ctx.signal.reason;
        if (!drained) throw new StepError(`deployment/${deploymentName(ctx.env)} still has ${left} pod(s) after ${formatDuration(timeoutMs)}`, `kubectl get pods -n ${ns(ctx.env)}`);
        return { waitedMs: Math.round(performance.now() - t0) };
      },
    },
    {
      id: 'reboot',
      title: 'Reboot the RDS instance',
      why: 'The restart itself (RebootDBInstance); in a protected environment it needs the environment name typed.',
      risk: 'destructive',
      equivalent: (_p, env) => `aws rds reboot-db-instance --db-instance-identifier ${env.config.rds?.instance}`,
      async plan(ctx) {
        const rds = await rdsApi(ctx);
        const i = await rds.requireInstance(rdsOf(ctx.env).instance, ctx.signal);
        return [{ action: 'reboot', target: `rds/${i.id}`, before: i.status, after: 'rebooting → available' }];
      },
      async run(ctx) {
        const rds = await rdsApi(ctx);
        const i = await rds.reboot(rdsOf(ctx.env).instance);
        ctx.log(`RebootDBInstance accepted; status ${i.status}`);
        return { instance: i.id, statusAfterCall: i.status };
      },
    },
    {
      id: 'wait-available',
      title: 'Wait until the instance is available',
      why: 'RDS reports "rebooting" then "available"; waiting has its own time limit.',
      risk: 'read',
      followsWrite: true,
      equivalent: (_p, env) => `aws rds wait db-instance-available --db-instance-identifier ${env.config.rds?.instance}`,
      plan: async (ctx) => [{ action: 'poll DescribeDBInstances for', target: `rds/${rdsOf(ctx.env).instance}`, after: `available within ${formatDuration(waitTimeout(ctx))}` }],
      async run(ctx) {
        const rds = await rdsApi(ctx);
        const r = rdsOf(ctx.env);
        const out = await rds.waitAvailable(r.instance, {
          timeoutMs: waitTimeout(ctx),
          intervalMs: parseDuration(r.pollInterval),
          signal: ctx.signal,
          onStatus: (s) => ctx.log(`rds/${r.instance}: ${s}`),
        });
        if (out.seen.length === 1) ctx.log('the instance reported available at the first look; SELECT 1 decides whether it is really back');
        return { seen: out.seen, waitedMs: out.waitedMs };
      },
    },
    {
      id: 'select-1',
      title: 'Check that the database answers (SELECT 1)',
      why: 'Available in the API is not the same as accepting connections; the app only comes back to a database that answers.',
      risk: 'read',
      followsWrite: true,
      equivalent: (_p, env) => `psql "${rdsDatabaseRef(env)}" -c 'SELECT 1'`,
      secrets: ['rdsDatabase'],
      plan: async (ctx) => [{ action: 'SELECT 1 on', target: rdsDatabaseRef(ctx.env), after: `answers within ${ctx.env.config.rds?.connectTimeout}` }],
      async run(ctx) {
        const url = rdsDatabaseUrl(ctx);
        return selectOneWithRetries(ctx as StepContext<unknown>, url, parseDuration(rdsOf(ctx.env).connectTimeout));
      },
    },
    {
      id: 'scale-back',
      title: 'Scale the app back to the recorded count',
      why: 'Back to exactly what it had before (the seed hard-codes 4).',
      risk: 'write',
      settles: ['scale-down'],
      equivalent: (_p, env) => `kubectl scale deployment/${deploymentName(env)} --replicas=<recorded count> -n ${ns(env)}`,
      async plan(ctx) {
        const to = recorded(ctx).replicas;
        if (to === 0) return [];
        const kube = await ctx.clients.kube();
        await kube.scaleDeployment(deploymentName(ctx.env), to, { dryRun: true });
        return [{ action: 'scale', target: `deployment/${deploymentName(ctx.env)}`, before: ctx.dryRun === 'plan' ? `0 (after the scale-down)` : '0', after: `${to} (recorded)`, validated: true }];
      },
      async run(ctx) {
        const kube = await ctx.clients.kube();
        const to = recorded(ctx).replicas;
        await kube.scaleDeployment(deploymentName(ctx.env), to);
        return { to };
      },
    },
    watchRolloutStep<DbRestartParams>(),
    announceStep<DbRestartParams>({
      id: 'announce-done',
      title: 'Announce the end of the maintenance',
      message: ({ env, state, runId }) => {
        const r = state.record as RecordedReplicas | undefined;
        return `Database restart of ${env.config.rds?.instance} (${env.name}) done; the app is back${r ? ` at ${r.replicas} replica(s)` : ''} (runbook run ${runId}).`;
      },
    }),
  ],
  render(state) {
    const r = state.record as RecordedReplicas | undefined;
    const w = state['wait-available'] as { seen: string[]; waitedMs: number } | undefined;
    const s = state['select-1'] as { attempts: number; waitedMs: number } | undefined;
    if (!r) return '';
    return [
      `rds/${r.instance} rebooted${w ? ` (status ${w.seen.join(' → ')}, ${formatDuration(w.waitedMs)})` : ''}`,
      s ? `SELECT 1 answered after ${s.attempts} attempt(s), ${formatDuration(s.waitedMs)}` : '',
      `deployment/${r.deployment} back at ${r.replicas} replica(s)`,
    ]
      .filter(Boolean)
      .join('\n') + '\n';
  },
});

function waitTimeout(ctx: Pick<StepContext<DbRestartParams>, 'params' | 'env'>): number {
  return ctx.params.waitTimeout ?? parseDuration(rdsOf(ctx.env).waitTimeout);
}
