import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { changeEnvStep, readEnvStep } from '../shared/env-vars.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';
import { cloudflareStep, rateLimitTargetStep, recordedStep, scaleStep, validateDdos, wafStep } from './ddos-mitigation.js';

export interface SecurityDdosRevertParams {
  container?: string;
  rolloutTimeout?: number;
}

const recorded = recordedStep<SecurityDdosRevertParams>();
const waf = wafStep<SecurityDdosRevertParams>({ revert: true, recorded });
const ratelimit = rateLimitTargetStep<SecurityDdosRevertParams>({ revert: true, recorded });
const current = readEnvStep<SecurityDdosRevertParams>();
const apply = changeEnvStep<SecurityDdosRevertParams>({
  title: 'Put the rate-limit variables back',
  why: 'Restores the values found by the ddos run (removing the variables it added).',
  current,
  change: (_p, run) => run.get(ratelimit),
  equivalent: (_p, env) => `kubectl set env deployment/${deploymentName(env)} RATE_LIMIT_ENABLED- RATE_LIMIT_REQUESTS- RATE_LIMIT_WINDOW- -n ${ns(env)}`,
});
const scale = scaleStep<SecurityDdosRevertParams>({ revert: true, recorded });
const rollout = watchRolloutStep<SecurityDdosRevertParams>();
const cloudflare = cloudflareStep<SecurityDdosRevertParams>({ revert: true, recorded });

export default defineProcedure<SecurityDdosRevertParams>({
  name: 'security ddos-revert',
  summary: 'After the attack: take the emergency WAF rules out, rate limiting off, replicas and Cloudflare level back (from the journal)',
  seedFixes: [
    'The seed has no way back from its DDoS mode: this puts back what the last `security ddos` run recorded in the journal (rules it replaced, variables, replica count, Cloudflare level).',
    'Only the emergency rules are removed (by name); rules added by anyone since are kept. The replica count is put back only if nobody changed it since.',
    'The Shield DRT role is left associated on purpose: it is an authorisation, not a mitigation (remove it with `aws shield disassociate-drt-role`).',
  ],
  params: [
    { name: 'container', flag: '--container <name>', description: 'container that has the rate-limit variables', type: 'k8sName' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the rollout', type: 'duration' },
  ],
  examples: [[]],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'patchDeployment', 'scaleDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env), ...(env.config.ddos?.waf ? [`waf/${env.config.ddos.waf.id}`] : [])],
  validate: (_p, env) => validateDdos(env),
  // Every step puts back what the ddos run changed: one confirmation for all of it (in a protected
  // environment) once the journal has been read, instead of one per step.
  approval: {
    summary(ctx) {
      const rec = ctx.find(recorded);
      const lines = [rec ? `put back what run ${rec.fromRun} changed (from the journal)` : 'no earlier ddos run in the journal: put back the defaults'];
      if (ctx.env.config.ddos?.waf) lines.push(`WAF: take out ${rec?.waf?.names.join(', ') || 'the emergency rules (by name)'}; other rules are kept`);
      lines.push(rec?.env !== undefined ? 'rate-limit variables back to the values found before' : 'rate-limit variables removed');
      if (rec?.scale) lines.push(`replicas ${rec.scale.to} → ${rec.scale.from} (only if still at ${rec.scale.to})`);
      if (ctx.env.config.cloudflare) lines.push(`Cloudflare security level back to ${rec?.cloudflare?.from ?? 'medium'} (only if still under_attack)`);
      return lines;
    },
  },
  steps: [recorded, waf, ratelimit, current, apply, scale, rollout, cloudflare],
  render(run) {
    const rec = run.find(recorded);
    const s = run.find(scale);
    const c = run.find(cloudflare);
    return [
      `from run:   ${rec?.fromRun ?? '(none in the journal)'}`,
      `WAF:        ${run.find(waf) ? 'emergency rules removed' : 'unchanged'}`,
      `rate limit: ${run.find(apply) ? 'restored' : 'unchanged'}`,
      `replicas:   ${s ? `${s.from} → ${s.to}` : 'unchanged'}`,
      `Cloudflare: ${c ? `${c.from} → ${c.to}` : 'unchanged'}`,
      '',
    ].join('\n');
  },
});
