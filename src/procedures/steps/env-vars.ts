import type { V1EnvVar } from '@kubernetes/client-node';
import type { Step, StepContext } from '../../core/procedure.js';
import { looksSecret, REDACTED } from '../../core/redact.js';
import { deploymentName, ns, pickContainer } from './pods.js';
import { restoreContainer } from './container-patch.js';

export interface EnvChange {
  set: Array<{ key: string; value: string }>;
  unset: string[];
}

export interface EnvState {
  container: string;
  index: number;
  env: V1EnvVar[] | null;
}

export function shown(key: string, value: string | undefined): string {
  if (value === undefined) return '∅';
  return looksSecret(key) ? REDACTED : JSON.stringify(value);
}

export function readEnvStep<P extends { container?: string }>(): Step<P> {
  return {
    id: 'current',
    title: "Read the container's environment",
    why: 'To show each variable before → after, and to put the previous environment back if the rollout fails.',
    risk: 'read',
    equivalent: (_p, env) => `kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} --list`,
    async run(ctx: StepContext<P>): Promise<EnvState> {
      const kube = await ctx.clients.kube();
      const d = await kube.getDeployment(deploymentName(ctx.env));
      const { index, name } = pickContainer(d, ctx.params.container, ctx.env);
      const env = d.spec?.template.spec?.containers[index].env ?? null;
      for (const e of env ?? []) if (looksSecret(e.name) && e.value) ctx.redactor.add(e.value);
      return { container: name, index, env };
    },
  };
}

/** Strategic merge on env by name: set values, or `$patch: delete` to remove — what `kubectl set env` sends. */
export function envPatch(container: string, change: EnvChange): unknown {
  const env = [...change.set.map((s) => ({ name: s.key, value: s.value })), ...change.unset.map((k) => ({ name: k, $patch: 'delete' }))];
  return { spec: { template: { spec: { containers: [{ name: container, env }] } } } };
}

export function changeEnvStep<P extends { container?: string }>(opts: { title: string; why: string; change: (p: P, state: Record<string, unknown>) => EnvChange; equivalent: Step<P>['equivalent'] }): Step<P> {
  return {
    id: 'apply',
    title: opts.title,
    why: opts.why,
    risk: 'write',
    equivalent: opts.equivalent,
    async plan(ctx) {
      const cur = ctx.state.current as EnvState;
      const change = opts.change(ctx.params, ctx.state);
      for (const s of change.set) if (looksSecret(s.key)) ctx.redactor.add(s.value);
      const before = new Map((cur.env ?? []).map((e) => [e.name, e.value]));
      const changes = [
        ...change.set.filter((s) => before.get(s.key) !== s.value || !before.has(s.key)).map((s) => ({ action: 'set', target: `${s.key} in ${cur.container}`, before: shown(s.key, before.get(s.key)), after: shown(s.key, s.value) })),
        ...change.unset.filter((k) => before.has(k)).map((k) => ({ action: 'unset', target: `${k} in ${cur.container}`, before: shown(k, before.get(k)), after: '∅' })),
      ];
      if (!changes.length) return [];
      const kube = await ctx.clients.kube();
      await kube.patchDeployment(deploymentName(ctx.env), envPatch(cur.container, change), 'strategic', { dryRun: true });
      return changes.map((c) => ({ ...c, validated: true }));
    },
    async run(ctx) {
      const cur = ctx.state.current as EnvState;
      const kube = await ctx.clients.kube();
      await kube.patchDeployment(deploymentName(ctx.env), envPatch(cur.container, opts.change(ctx.params, ctx.state)), 'strategic');
      return { container: cur.container, index: cur.index, previous: cur.env };
    },
    async undo(ctx, data) {
      const d = data as { container: string; index: number; previous: V1EnvVar[] | null };
      await restoreContainer(await ctx.clients.kube(), deploymentName(ctx.env), d.index, d.container, 'env', d.previous);
    },
    undoByHand: (ctx) => `kubectl rollout undo deployment/${deploymentName(ctx.env)} -n ${ns(ctx.env)}`,
  };
}
