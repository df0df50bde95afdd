import { lockTargets } from '../../core/lock.js';
import type { V1PodTemplateSpec } from '@kubernetes/client-node';
import { StepError, UsageError } from '../../core/errors.js';
import { defineProcedure, stepFor } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { deploymentName, ns, ownedReplicaSets, revisionOf } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';

export interface AppRollbackParams {
  toRevision?: number;
  rolloutTimeout?: number;
}

interface History {
  current: number;
  target: number;
  revisions: Array<{ revision: number; replicaSet: string; image: string; changeCause?: string }>;
  currentTemplate: V1PodTemplateSpec;
  targetTemplate: V1PodTemplateSpec;
}

/** The RS template as the deployment's template: without the pod-template-hash label the RS controller adds. */
function asDeploymentTemplate(t: V1PodTemplateSpec | undefined): V1PodTemplateSpec {
  const copy = JSON.parse(JSON.stringify(t ?? {})) as V1PodTemplateSpec;
  if (copy.metadata?.labels) delete copy.metadata.labels['pod-template-hash'];
  return copy;
}

/** The same pod template, ignoring the pod-template-hash label and key order (as `kubectl rollout undo` compares them). */
function sameTemplate(a: V1PodTemplateSpec | undefined, b: V1PodTemplateSpec | undefined): boolean {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .filter(([, x]) => x !== undefined)
              .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
              .map(([k, x]) => [k, canonical(x)]),
          )
        : v;
  return JSON.stringify(canonical(asDeploymentTemplate(a))) === JSON.stringify(canonical(asDeploymentTemplate(b)));
}

function images(t: V1PodTemplateSpec | undefined): string {
  return (t?.spec?.containers ?? []).map((c) => c.image ?? '?').join(',');
}

const step = stepFor<AppRollbackParams>();

const history = step({
  id: 'history',
  title: 'Read the revision history',
  why: 'Rollback targets a ReplicaSet revision; the history shows which one and what it runs.',
  risk: 'read',
  equivalent: (_p, env) => `kubectl rollout history deployment/${deploymentName(env)} -n ${ns(env)}`,
  async run(ctx): Promise<History> {
    const kube = await ctx.clients.kube();
    const d = await kube.getDeployment(deploymentName(ctx.env));
    const sets = await ownedReplicaSets(kube, d);
    const current = revisionOf(d);
    const revisions = sets.map((rs) => ({
      revision: revisionOf(rs),
      replicaSet: rs.metadata?.name ?? '',
      image: images(rs.spec?.template),
      changeCause: rs.metadata?.annotations?.['kubernetes.io/change-cause'],
    }));
    const known = revisions.map((r) => r.revision).filter((r) => r !== current);
    let target: number;
    if (ctx.params.toRevision !== undefined) {
      if (ctx.params.toRevision === current) throw new UsageError(`revision ${current} is the current one; nothing to roll back to`);
      if (!known.includes(ctx.params.toRevision))
        throw new UsageError(`revision ${ctx.params.toRevision} not found`, `known revisions: ${known.join(', ') || 'none'}`);
      target = ctx.params.toRevision;
    } else {
      const older = known.filter((r) => r < current);
      if (!older.length) throw new StepError(`deployment/${d.metadata?.name} has no previous revision to roll back to`);
      target = Math.max(...older);
    }
    const rs = sets.find((s) => revisionOf(s) === target)!;
    return { current, target, revisions, currentTemplate: d.spec!.template, targetTemplate: asDeploymentTemplate(rs.spec?.template) };
  },
  postcondition: {
    describe: 'the deployment still runs the template read (or the one this run rolled back to)',
    // A read: reading the history again is safe; the rollback then plans (and is gated) from what is there now.
    async check(ctx, h) {
      const now = (await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env))).spec?.template;
      if (sameTemplate(now, h.currentTemplate) || (ctx.find(rollback) && sameTemplate(now, h.targetTemplate))) return { holds: true };
      return {
        holds: false,
        found: `the pod template of deployment/${deploymentName(ctx.env)} (${images(now)}) is not the one read (${images(h.currentTemplate)})`,
      };
    },
  },
});

const rollback = step({
  id: 'rollback',
  title: 'Roll back the pod template',
  why: "Puts the old ReplicaSet's pod template back on the deployment, as `kubectl rollout undo` does; Kubernetes then rolls pods to it.",
  risk: 'write',
  equivalent: (p, env) => `kubectl rollout undo deployment/${deploymentName(env)} -n ${ns(env)}${p.toRevision ? ` --to-revision=${p.toRevision}` : ''}`,
  async plan(ctx) {
    const h = ctx.get(history);
    const kube = await ctx.clients.kube();
    await kube.patchDeployment(deploymentName(ctx.env), templatePatch(h.targetTemplate), 'json', { dryRun: true });
    return [
      {
        action: 'roll back',
        target: `deployment/${deploymentName(ctx.env)}`,
        before: `revision ${h.current} (${images(h.currentTemplate)})`,
        after: `revision ${h.target} (${images(h.targetTemplate)})`,
        validated: true,
      },
    ];
  },
  async run(ctx) {
    const h = ctx.get(history);
    const kube = await ctx.clients.kube();
    await kube.patchDeployment(deploymentName(ctx.env), templatePatch(h.targetTemplate), 'json');
    return { from: h.current, to: h.target, previousTemplate: h.currentTemplate };
  },
  async undo(ctx, data) {
    const kube = await ctx.clients.kube();
    await kube.patchDeployment(deploymentName(ctx.env), templatePatch(data.previousTemplate), 'json');
  },
  undoByHand: (ctx, data) => `kubectl rollout undo deployment/${deploymentName(ctx.env)} -n ${ns(ctx.env)}  # back to the template of revision ${data.from}`,
  postcondition: {
    describe: 'the deployment runs the template rolled back to',
    // The deployment was changed again after this rollback (rolled forward, or undone): someone's later
    // decision, which a resume must not overrule by rolling back again.
    unsafeToRerun: (ctx) =>
      `look at what runs now (kubectl rollout history deployment/${deploymentName(ctx.env)} -n ${ns(ctx.env)}), then run app rollback again if it still needs rolling back`,
    async check(ctx) {
      const h = ctx.get(history);
      const now = (await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env))).spec?.template;
      return sameTemplate(now, h.targetTemplate)
        ? { holds: true }
        : {
            holds: false,
            found: `the pod template of deployment/${deploymentName(ctx.env)} (${images(now)}) is not that of revision ${h.target} (${images(h.targetTemplate)})`,
          };
    },
  },
});

const rollout = watchRolloutStep<AppRollbackParams>();

export default defineProcedure<AppRollbackParams>({
  name: 'app rollback',
  summary: 'Roll the deployment back to the previous (or a given) revision',
  seedFixes: [
    'The seed rolls back blindly; this shows the revision history first, says which revision (and image) it goes back to, and refuses an unknown revision before changing anything.',
    'It waits for the rollback to finish; if it does not, the template it replaced is put back.',
  ],
  params: [
    { name: 'toRevision', flag: '--to-revision <n>', description: 'revision to roll back to (default: the previous one)', type: 'int', min: 1 },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the rollout', type: 'duration' },
  ],
  examples: [[]],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'patchDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  steps: [history, rollback, rollout],
  render(run) {
    const h = run.find(history);
    if (!h) return '';
    return table(
      ['REVISION', 'REPLICASET', 'IMAGE', 'CHANGE-CAUSE'],
      h.revisions.map((r) => [
        `${r.revision}${r.revision === h.target ? ' (now)' : r.revision === h.current ? ' (was)' : ''}`,
        r.replicaSet,
        r.image,
        r.changeCause,
      ]),
    );
  },
});

function templatePatch(template: V1PodTemplateSpec): unknown[] {
  return [{ op: 'replace', path: '/spec/template', value: template }];
}
