import { lockTargets } from '../../core/lock.js';
import { StepError } from '../../core/errors.js';
import { formatDuration, parseDuration } from '../../core/duration.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { announceStep } from '../shared/notify.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep, rolloutTimeout } from '../shared/rollout.js';
import { rdsDatabaseRef, rdsDatabaseUrl, rdsOf, selectOneWithRetries } from './rds.js';

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

const scaleCmd = (ctx: Pick<StepContext<DbRestartParams>, 'env'>, n: number) =>
  `kubectl scale deployment/${deploymentName(ctx.env)} --replicas=${n} -n ${ns(ctx.env)}`;

const step = stepFor<DbRestartParams>();

const record = step({
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
    const rds = await ctx.clients.rds();
    const instance = await rds.requireInstance(rdsOf(ctx.env).instance, ctx.signal);
    if (instance.status !== 'available') {
      throw new StepError(
        `RDS instance ${instance.id} is "${instance.status}", not available; a reboot now would fail or stack on another operation`,
        `wait for it: aws rds wait db-instance-available --db-instance-identifier ${instance.id}`,
      );
    }
    if (replicas === 0) ctx.reporter.warn(`deployment/${deploymentName(ctx.env)} already has 0 replicas; it will be left at 0`);
    ctx.log(`deployment/${deploymentName(ctx.env)} has ${replicas} replica(s); RDS ${instance.id} is ${instance.status}`);
    return { deployment: deploymentName(ctx.env), replicas, instance: instance.id, instanceStatus: instance.status };
  },
  postcondition: {
    describe: 'the recorded count is the one to restore (the app is at 0 for this run, or still at that count)',
    async check(ctx, r) {
      const live = await liveReplicas(ctx);
      if (live === r.replicas) return { holds: true };
      // Only the journal knows the count now: shown with its age and confirmed.
      if (live === 0) return { holds: true, confirm: `deployment/${r.deployment} goes back to ${r.replicas} replica(s) after the reboot` };
      return { holds: false, found: `deployment/${r.deployment} has ${live} replica(s) now, ${r.replicas} were recorded` };
    },
  },
});

const announce = announceStep<DbRestartParams>({
  id: 'announce',
  title: 'Announce the maintenance',
  message: ({ env, runId }) =>
    `Database restart of ${env.config.rds?.instance} (${env.name}) starting now; the app will be down until it is back (runbook run ${runId}).`,
});

const scaleDown = step({
  id: 'scale-down',
  title: 'Scale the app to 0 (stop traffic to the database)',
  why: 'No client writes during the reboot, and no pool of dead connections afterwards.',
  risk: 'destructive',
  equivalent: (_p, env) => `kubectl scale deployment/${deploymentName(env)} --replicas=0 -n ${ns(env)}`,
  async plan(ctx) {
    const from = ctx.get(record).replicas;
    if (from === 0) return [];
    // Resuming a run whose reboot is done: taking the app down again would be downtime for nothing.
    if (ctx.find(reboot)) return [];
    const kube = await ctx.clients.kube();
    const live = await liveReplicas(ctx);
    await kube.scaleDeployment(deploymentName(ctx.env), 0, { dryRun: true });
    return [{ action: 'scale', target: `deployment/${deploymentName(ctx.env)}`, before: String(live), after: '0', validated: true }];
  },
  async run(ctx) {
    const kube = await ctx.clients.kube();
    await kube.scaleDeployment(deploymentName(ctx.env), 0);
    return { from: ctx.get(record).replicas, to: 0 };
  },
  async undo(ctx, data) {
    const kube = await ctx.clients.kube();
    await kube.scaleDeployment(deploymentName(ctx.env), data.from);
  },
  undoByHand: (ctx, data) => scaleCmd(ctx, data.from),
  postcondition: {
    describe: 'the app is at 0 replicas',
    async check(ctx) {
      if (ctx.find(reboot)) return { holds: true };
      const live = await liveReplicas(ctx);
      return live === 0
        ? { holds: true }
        : { holds: false, found: `deployment/${deploymentName(ctx.env)} has ${live} replica(s), so the database has traffic again` };
    },
  },
});

const drained = step({
  id: 'drained',
  title: 'Wait for the app pods to stop',
  why: 'Scaling to 0 only asks; the reboot waits until no pod of the app is left to hold connections.',
  risk: 'read',
  followsWrite: true,
  equivalent: (_p, env) =>
    `kubectl wait --for=delete pod -l ${env.config.kubernetes?.selector ?? `app=${env.config.kubernetes?.deployment}`} -n ${env.config.kubernetes?.namespace} --timeout=${env.config.rollout.timeout}`,
  plan: async (ctx) => [
    { action: 'wait for 0 pods of', target: `deployment/${deploymentName(ctx.env)}`, after: `within ${formatDuration(rolloutTimeout(ctx))}` },
  ],
  async run(ctx) {
    if (ctx.get(record).replicas === 0 || ctx.find(reboot)) return { waitedMs: 0 };
    const kube = await ctx.clients.kube();
    const t0 = performance.now();
    const timeoutMs = rolloutTimeout(ctx);
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
    if (!drained)
      throw new StepError(
        `deployment/${deploymentName(ctx.env)} still has ${left} pod(s) after ${formatDuration(timeoutMs)}`,
        `kubectl get pods -n ${ns(ctx.env)}`,
      );
    return { waitedMs: Math.round(performance.now() - t0) };
  },
  postcondition: {
    describe: 'the app is at 0 replicas and its pods are gone',
    async check(ctx) {
      if (ctx.get(record).replicas === 0 || ctx.find(reboot)) return { holds: true };
      const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
      const want = d.spec?.replicas ?? 0;
      const pods = d.status?.replicas ?? 0;
      return want === 0 && pods === 0 ? { holds: true } : { holds: false, found: `deployment/${deploymentName(ctx.env)} wants ${want} and has ${pods} pod(s)` };
    },
  },
});

const reboot = step({
  id: 'reboot',
  title: 'Reboot the RDS instance',
  why: 'The restart itself (RebootDBInstance); approved with the whole plan up front (in a protected environment by typing its name).',
  risk: 'destructive',
  equivalent: (_p, env) => `aws rds reboot-db-instance --db-instance-identifier ${env.config.rds?.instance}`,
  async plan(ctx) {
    const rds = await ctx.clients.rds();
    const i = await rds.requireInstance(rdsOf(ctx.env).instance, ctx.signal);
    return [{ action: 'reboot', target: `rds/${i.id}`, before: i.status, after: 'rebooting → available' }];
  },
  async run(ctx) {
    const rds = await ctx.clients.rds();
    const i = await rds.reboot(rdsOf(ctx.env).instance);
    ctx.log(`RebootDBInstance accepted; status ${i.status}`);
    return { instance: i.id, statusAfterCall: i.status };
  },
  postcondition: {
    describe: 'the instance is rebooting or available again',
    // A second reboot is a second outage of the database; a person decides, not a resume.
    unsafeToRerun: (ctx) =>
      `look at the instance first (aws rds describe-db-instances --db-instance-identifier ${rdsOf(ctx.env).instance}), then run db restart again if it still needs one`,
    async check(ctx) {
      const i = await (await ctx.clients.rds()).requireInstance(rdsOf(ctx.env).instance, ctx.signal);
      return i.status === 'available' || i.status === 'rebooting' ? { holds: true } : { holds: false, found: `rds/${i.id} is "${i.status}"` };
    },
  },
});

const waitAvailable = step({
  id: 'wait-available',
  title: 'Wait until the instance is available',
  why: 'RDS reports "rebooting" then "available"; waiting has its own time limit.',
  risk: 'read',
  followsWrite: true,
  equivalent: (_p, env) => `aws rds wait db-instance-available --db-instance-identifier ${env.config.rds?.instance}`,
  plan: async (ctx) => [
    { action: 'poll DescribeDBInstances for', target: `rds/${rdsOf(ctx.env).instance}`, after: `available within ${formatDuration(waitTimeout(ctx))}` },
  ],
  async run(ctx) {
    const rds = await ctx.clients.rds();
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
  postcondition: {
    describe: 'the instance is available',
    async check(ctx) {
      const i = await (await ctx.clients.rds()).requireInstance(rdsOf(ctx.env).instance, ctx.signal);
      return i.status === 'available' ? { holds: true } : { holds: false, found: `rds/${i.id} is "${i.status}"` };
    },
  },
});

const selectOne = step({
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
    return selectOneWithRetries(ctx, url, parseDuration(rdsOf(ctx.env).connectTimeout));
  },
  postcondition: {
    describe: 'the database answers SELECT 1',
    async check(ctx) {
      try {
        // One attempt: if it does not answer now, the step runs again with its full time limit.
        await selectOneWithRetries({ ...ctx, log: () => undefined }, rdsDatabaseUrl(ctx), 0);
        return { holds: true };
      } catch (err) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        return { holds: false, found: (err as Error).message };
      }
    },
  },
});

const scaleBack = step({
  id: 'scale-back',
  title: 'Scale the app back to the recorded count',
  why: 'Back to exactly what it had before (the seed hard-codes 4). Restoring service is never gated: declining it would only leave the app down.',
  risk: 'write',
  restores: true,
  settles: ['scale-down'],
  equivalent: (_p, env) => `kubectl scale deployment/${deploymentName(env)} --replicas=<recorded count> -n ${ns(env)}`,
  async plan(ctx) {
    const to = ctx.get(record).replicas;
    if (to === 0) return [];
    const kube = await ctx.clients.kube();
    await kube.scaleDeployment(deploymentName(ctx.env), to, { dryRun: true });
    return [
      {
        action: 'scale',
        target: `deployment/${deploymentName(ctx.env)}`,
        before: ctx.dryRun === 'plan' ? `0 (after the scale-down)` : '0',
        after: `${to} (recorded)`,
        validated: true,
      },
    ];
  },
  async run(ctx) {
    const kube = await ctx.clients.kube();
    const to = ctx.get(record).replicas;
    await kube.scaleDeployment(deploymentName(ctx.env), to);
    return { to };
  },
  postcondition: {
    describe: 'the app is scaled up again',
    async check(ctx, data) {
      const to = data.to;
      const live = await liveReplicas(ctx);
      // Another count than ours is someone's later decision, not ours to undo.
      return live > 0 || to === 0 ? { holds: true } : { holds: false, found: `deployment/${deploymentName(ctx.env)} is at 0 replicas` };
    },
  },
});

const rollout = watchRolloutStep<DbRestartParams>();

const announceDone = announceStep<DbRestartParams>({
  id: 'announce-done',
  title: 'Announce the end of the maintenance',
  message: ({ env, find, runId }) => {
    const r = find(record);
    return `Database restart of ${env.config.rds?.instance} (${env.name}) done; the app is back${r ? ` at ${r.replicas} replica(s)` : ''} (runbook run ${runId}).`;
  },
});

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
    {
      name: 'waitTimeout',
      flag: '--wait-timeout <duration>',
      description: "how long to wait for the instance to be available (default: the environment's rds.waitTimeout)",
      type: 'duration',
    },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the app to come back', type: 'duration' },
  ],
  examples: [[], ['--wait-timeout', '30m']],
  requires: ['kubernetes', 'aws', 'rds'],
  kube: ['getDeployment', 'scaleDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  // Scales the deployment down and back, and reboots the instance (the database it serves too).
  locks: (_p, env) => [lockTargets.deployment(env), lockTargets.rds(env), lockTargets.postgres(env)],
  // One typed confirmation, after the count is read and before the announcement, for the whole outage.
  approval: {
    before: 'announce',
    summary(ctx) {
      const r = ctx.get(record);
      const d = `deployment/${r.deployment}`;
      const wait = formatDuration(waitTimeout(ctx));
      const connect = formatDuration(parseDuration(rdsOf(ctx.env).connectTimeout));
      return [
        `announce the maintenance${ctx.env.config.notify ? '' : ' (no notify channel configured: nothing is sent)'}`,
        r.replicas > 0
          ? `scale ${d} ${r.replicas} → 0: the app is DOWN from then until the database answers again`
          : `${d} is already at 0 replicas: it stays at 0`,
        `reboot rds/${r.instance} (usually a few minutes; waits up to ${wait} for "available", then up to ${connect} for SELECT 1)`,
        `then, without asking again: scale ${d} back to ${r.replicas} (the recorded count), watch the rollout, announce the end`,
        `on any failure or Ctrl-C after the scale-down, ${d} is put back to ${r.replicas}`,
      ];
    },
  },
  steps: [record, announce, scaleDown, drained, reboot, waitAvailable, selectOne, scaleBack, rollout, announceDone],
  render(run) {
    const r = run.find(record);
    const w = run.find(waitAvailable);
    const s = run.find(selectOne);
    if (!r) return '';
    return (
      [
        `rds/${r.instance} rebooted${w ? ` (status ${w.seen.join(' → ')}, ${formatDuration(w.waitedMs)})` : ''}`,
        s ? `SELECT 1 answered after ${s.attempts} attempt(s), ${formatDuration(s.waitedMs)}` : '',
        `deployment/${r.deployment} back at ${r.replicas} replica(s)`,
      ]
        .filter(Boolean)
        .join('\n') + '\n'
    );
  },
});

async function liveReplicas(ctx: Pick<StepContext<DbRestartParams>, 'clients' | 'env'>): Promise<number> {
  const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
  return d.spec?.replicas ?? 0;
}

function waitTimeout(ctx: Pick<StepContext<DbRestartParams>, 'params' | 'env'>): number {
  return ctx.params.waitTimeout ?? parseDuration(rdsOf(ctx.env).waitTimeout);
}
