import { lockTargets } from '../../core/lock.js';
import { validateEnvName } from '../../core/params.js';
import { defineProcedure } from '../../core/procedure.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';
import { changeEnvStep, readEnvStep } from '../shared/env-vars.js';

export interface AppEnvUnsetParams {
  keys: string[];
  container?: string;
  rolloutTimeout?: number;
}

const current = readEnvStep<AppEnvUnsetParams>();

const apply = changeEnvStep<AppEnvUnsetParams>({
  current,
  title: 'Remove the environment variables',
  why: 'Changing the pod template rolls out new pods without these variables.',
  change: (p) => ({ set: [], unset: p.keys }),
  equivalent: (p, env) => `kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} ${p.keys.map((k) => `${k}-`).join(' ')}`,
});

const rollout = watchRolloutStep<AppEnvUnsetParams>();

export default defineProcedure<AppEnvUnsetParams>({
  name: 'app env unset',
  summary: 'Remove environment variables from the deployment (KEY …)',
  seedFixes: ['Removes only the variables named (absent ones are reported, not an error), waits for the rollout, and restores them if it fails.'],
  params: [
    { name: 'keys', argument: '<KEY...>', description: 'variables to remove', type: 'string', required: true },
    { name: 'container', flag: '--container <name>', description: 'container to change', type: 'k8sName' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the rollout', type: 'duration' },
  ],
  examples: [['RATE_LIMIT']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'patchDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  validate(p) {
    for (const k of p.keys) validateEnvName(k);
  },
  steps: [current, apply, rollout],
});
