import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { changeEnvStep, readEnvStep } from '../shared/env-vars.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';
import { cloudflareStep, rateLimitTargetStep, rateLimitVars, scaleStep, shieldStep, validateDdos, wafStep } from './ddos-mitigation.js';

export interface SecurityDdosParams {
  replicas?: number;
  container?: string;
  rolloutTimeout?: number;
}

const shield = shieldStep<SecurityDdosParams>();
const waf = wafStep<SecurityDdosParams>({ revert: false });
const ratelimit = rateLimitTargetStep<SecurityDdosParams>({ revert: false });
const current = readEnvStep<SecurityDdosParams>();
const apply = changeEnvStep<SecurityDdosParams>({
  title: "Turn the application's rate limiting on",
  why: 'RATE_LIMIT_ENABLED/REQUESTS/WINDOW from ddos.rateLimit; the previous values are recorded so the revert puts them back.',
  current,
  change: (_p, run) => run.get(ratelimit),
  equivalent: (_p, env) =>
    `kubectl set env deployment/${deploymentName(env)} ${Object.entries(rateLimitVars(env))
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')} -n ${ns(env)}`,
});
const scale = scaleStep<SecurityDdosParams>({ revert: false, replicas: (p) => p.replicas });
const rollout = watchRolloutStep<SecurityDdosParams>();
const cloudflare = cloudflareStep<SecurityDdosParams>({ revert: false });

export default defineProcedure<SecurityDdosParams>({
  name: 'security ddos',
  summary: 'DDoS mitigation: Shield DRT role, emergency WAF rules merged in, rate limiting, scale up, Cloudflare under_attack',
  seedFixes: [
    'The seed hard-codes the WAF lock token: it is read with GetWebACL right before UpdateWebACL, and on WAFOptimisticLockException read again and retried once.',
    'The seed replaces every rule of the web ACL with the emergency file: the emergency rules are merged by name, every other rule is kept, and the rules found are recorded for the undo and for `security ddos-revert`.',
    'The emergency rules are validated (a JSON array of rules with Name, Priority, Statement, VisibilityConfig) before anything is contacted.',
    'The seed scales to a hard-coded 20: the count comes from --replicas or ddos.replicas, is checked against limits.maxReplicas, never scales down, and the count found is recorded.',
    'The seed calls Cloudflare with the global API key and no way back: an API token (Authorization: Bearer) is used and the level found is recorded.',
    'Every change is compensated, last first, if a later step fails; `security ddos-revert` undoes the whole mitigation after the attack.',
  ],
  params: [
    { name: 'replicas', flag: '--replicas <n>', description: 'scale up to this many replicas (default: ddos.replicas)', type: 'int', min: 1 },
    { name: 'container', flag: '--container <name>', description: 'container that gets the rate-limit variables', type: 'k8sName' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the rollout', type: 'duration' },
  ],
  examples: [[], ['--replicas', '10']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'patchDeployment', 'scaleDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  // The deployment (rate-limit variables, replicas) and the web ACL it adds rules to.
  locks: (_p, env) => [lockTargets.deployment(env), ...(env.config.ddos?.waf ? [`waf/${env.config.ddos.waf.id}`] : [])],
  validate: (p, env) => validateDdos(env, p.replicas),
  steps: [shield, waf, ratelimit, current, apply, scale, rollout, cloudflare],
  render(run) {
    const w = run.find(waf);
    const s = run.find(scale);
    const c = run.find(cloudflare);
    const lines = [
      `WAF:        ${w ? `merged ${w.names.join(', ')}${w.retried ? ' (retried after a lock conflict)' : ''}` : 'unchanged'}`,
      `rate limit: ${run.find(apply) ? 'on' : 'unchanged'}`,
      `replicas:   ${s ? `${s.from} → ${s.to}` : 'unchanged'}`,
      `Cloudflare: ${c ? `${c.from} → ${c.to}` : 'unchanged'}`,
    ];
    return `${lines.join('\n')}\nundo with: runbook security ddos-revert\n`;
  },
});
