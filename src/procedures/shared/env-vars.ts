import type { V1EnvVar } from '@kubernetes/client-node';
import type { RunData, Step, StepContext, StepRef } from '../../core/procedure.js';
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

/** A variable as it is now: its value (masked if secret-looking), or where `valueFrom` takes it from. */
export function shownVar(e: V1EnvVar | undefined): string {
  if (!e) return '∅';
  const from = e.valueFrom;
  if (!from) return shown(e.name, e.value ?? '');
  if (from.secretKeyRef) return `from secret ${from.secretKeyRef.name} key ${from.secretKeyRef.key}`;
  if (from.configMapKeyRef) return `from configmap ${from.configMapKeyRef.name} key ${from.configMapKeyRef.key}`;
  if (from.fieldRef) return `from field ${from.fieldRef.fieldPath}`;
  if (from.resourceFieldRef)
    return `from resource ${from.resourceFieldRef.resource}${from.resourceFieldRef.containerName ? ` of ${from.resourceFieldRef.containerName}` : ''}`;
  return 'from a valueFrom reference';
}

export function readEnvStep<P extends { container?: string }>(): Step<P, EnvState> {
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
    postcondition: {
      describe: "the container's environment is the one read",
      // A read: reading again is safe, and what a later change is planned from (and put back to) must be what is there now.
      async check(ctx, data) {
        const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
        const c = d.spec?.template.spec?.containers.find((x) => x.name === data.container);
        if (!c) return { holds: false, found: `deployment/${deploymentName(ctx.env)} has no container "${data.container}" now` };
        return sameEnv(c.env ?? null, data.env)
          ? { holds: true }
          : { holds: false, found: `the environment of container ${data.container} differs from the one read (this run's own change, or someone's since)` };
      },
    },
  };
}

/** Two environment lists alike: the same variables in the same order, with the same values or references. */
function sameEnv(a: V1EnvVar[] | null, b: V1EnvVar[] | null): boolean {
  const key = (l: V1EnvVar[] | null) => JSON.stringify((l ?? []).map((e) => [e.name, e.valueFrom ? JSON.stringify(e.valueFrom) : (e.value ?? '')]));
  return key(a) === key(b);
}

/** The variables of `change` that do not stand in the live environment (set to another value, or still there when unset). */
export function envChangeMissing(live: V1EnvVar[] | null, change: EnvChange): string[] {
  const now = new Map((live ?? []).map((e) => [e.name, e]));
  const missing: string[] = [];
  for (const s of change.set) {
    const e = now.get(s.key);
    if (!e || e.valueFrom || (e.value ?? '') !== s.value) missing.push(`${s.key} is ${shownVar(e)}, not ${shown(s.key, s.value)}`);
  }
  for (const k of change.unset) if (now.has(k)) missing.push(`${k} is still set (${shownVar(now.get(k))})`);
  return missing;
}

/**
 * Strategic merge on env by name: set values, or `$patch: delete` to remove — what `kubectl set env` sends.
 * With the current list known, `$setElementOrder/env` keeps the variables where they are and puts new ones
 * last, as kubectl does: without it the API server inserts new variables after the last one the patch
 * names, ahead of variables they may reference with $(NAME). A variable that takes its value from a
 * secret, config map or field gets `valueFrom: null` too: the plain value replaces the reference, as
 * with kubectl (the API server refuses a variable with both).
 */
export function envPatch(container: string, change: EnvChange, current: V1EnvVar[] | null = null): unknown {
  const from = new Set((current ?? []).filter((e) => e.valueFrom).map((e) => e.name));
  const env = [
    ...change.set.map((s) => ({ name: s.key, value: s.value, ...(from.has(s.key) ? { valueFrom: null } : {}) })),
    ...change.unset.map((k) => ({ name: k, $patch: 'delete' })),
  ];
  const patch: Record<string, unknown> = { name: container, env };
  if (current) {
    const gone = new Set(change.unset);
    const names = new Set(current.map((e) => e.name).filter((n) => !gone.has(n)));
    for (const s of change.set) names.add(s.key);
    patch['$setElementOrder/env'] = [...names].map((name) => ({ name }));
  }
  return { spec: { template: { spec: { containers: [patch] } } } };
}

/** What the apply step changed: the container's environment before, to put back on undo. */
export interface EnvApplied {
  container: string;
  index: number;
  previous: V1EnvVar[] | null;
}

export function changeEnvStep<P extends { container?: string }>(opts: {
  title: string;
  why: string;
  /** The readEnvStep() of the same procedure. */
  current: StepRef<EnvState>;
  change: (p: P, run: RunData) => EnvChange;
  equivalent: Step<P>['equivalent'];
}): Step<P, EnvApplied> {
  return {
    id: 'apply',
    title: opts.title,
    why: opts.why,
    risk: 'write',
    equivalent: opts.equivalent,
    async plan(ctx) {
      const cur = ctx.get(opts.current);
      const change = opts.change(ctx.params, ctx);
      for (const s of change.set) if (looksSecret(s.key)) ctx.redactor.add(s.value);
      const before = new Map((cur.env ?? []).map((e) => [e.name, e]));
      const unchanged = (key: string, value: string) => {
        const e = before.get(key);
        return e !== undefined && !e.valueFrom && (e.value ?? '') === value;
      };
      const changes = [
        ...change.set
          .filter((s) => !unchanged(s.key, s.value))
          .map((s) => ({ action: 'set', target: `${s.key} in ${cur.container}`, before: shownVar(before.get(s.key)), after: shown(s.key, s.value) })),
        ...change.unset
          .filter((k) => before.has(k))
          .map((k) => ({ action: 'unset', target: `${k} in ${cur.container}`, before: shownVar(before.get(k)), after: '∅' })),
      ];
      if (!changes.length) return [];
      const kube = await ctx.clients.kube();
      await kube.patchDeployment(deploymentName(ctx.env), envPatch(cur.container, change, cur.env), 'strategic', { dryRun: true });
      return changes.map((c) => ({ ...c, validated: true }));
    },
    async run(ctx): Promise<EnvApplied> {
      const cur = ctx.get(opts.current);
      const kube = await ctx.clients.kube();
      await kube.patchDeployment(deploymentName(ctx.env), envPatch(cur.container, opts.change(ctx.params, ctx), cur.env), 'strategic');
      return { container: cur.container, index: cur.index, previous: cur.env };
    },
    async undo(ctx, d) {
      await restoreContainer(await ctx.clients.kube(), deploymentName(ctx.env), d.index, d.container, 'env', d.previous);
    },
    undoByHand: (ctx) => `kubectl rollout undo deployment/${deploymentName(ctx.env)} -n ${ns(ctx.env)}`,
    postcondition: {
      describe: 'the variables are set (or removed) as asked',
      // Setting the same values again is what the run was asked to do: safe, and gated again.
      async check(ctx, data) {
        const d = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
        const c = d.spec?.template.spec?.containers.find((x) => x.name === data.container);
        if (!c) return { holds: false, found: `deployment/${deploymentName(ctx.env)} has no container "${data.container}" now` };
        const missing = envChangeMissing(c.env ?? null, opts.change(ctx.params, ctx));
        return missing.length === 0 ? { holds: true } : { holds: false, found: `in container ${data.container}, ${missing.join('; ')}` };
      },
    },
  };
}
