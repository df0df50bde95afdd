import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { looksSecret, REDACTED } from '../../core/redact.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';
import { changeEnvStep, readEnvStep } from '../shared/env-vars.js';

export interface AppEnvSetParams {
  vars: Array<{ key: string; value: string }>;
  container?: string;
  rolloutTimeout?: number;
}

const current = readEnvStep<AppEnvSetParams>();

const apply = changeEnvStep<AppEnvSetParams>({
  current,
  title: 'Set the environment variables',
  why: 'Changing the pod template rolls out new pods with the new values.',
  change: (p) => ({ set: p.vars, unset: [] }),
  equivalent: (p, env) =>
    `kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} ${p.vars.map((v) => `${v.key}=${looksSecret(v.key) ? REDACTED : v.value}`).join(' ')}`,
});

const rollout = watchRolloutStep<AppEnvSetParams>();

export default defineProcedure<AppEnvSetParams>({
  name: 'app env set',
  summary: 'Set environment variables on the deployment (KEY=VALUE …)',
  seedFixes: [
    'Shows each variable before → after, with values of secret-looking names (PASSWORD, TOKEN, KEY…) masked in output and the journal.',
    'Waits for the rollout the change causes, and puts the previous environment back if it does not complete.',
  ],
  params: [
    { name: 'vars', argument: '<KEY=VALUE...>', description: 'variables to set', type: 'keyValue', required: true },
    { name: 'container', flag: '--container <name>', description: "container to change (default: the only one, or the environment's)", type: 'k8sName' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the rollout', type: 'duration' },
  ],
  examples: [['RATE_LIMIT=100']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'patchDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  steps: [current, apply, rollout],
});
