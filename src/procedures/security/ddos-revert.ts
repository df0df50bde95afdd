import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { changeEnvStep, readEnvStep, type EnvChange } from '../shared/env-vars.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';
import { cloudflareStep, rateLimitTargetStep, recordedStep, scaleStep, validateDdos, wafStep, type DdosRecord, type ScaleData } from './ddos-mitigation.js';

export interface SecurityDdosRevertParams {
  container?: string;
  rolloutTimeout?: number;
}

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
      const rec = ctx.state.recorded as DdosRecord | null | undefined;
      const lines = [rec ? `put back what run ${rec.fromRun} changed (from the journal)` : 'no earlier ddos run in the journal: put back the defaults'];
      if (ctx.env.config.ddos?.waf) lines.push(`WAF: take out ${rec?.waf?.names.join(', ') || 'the emergency rules (by name)'}; other rules are kept`);
      lines.push(rec?.env !== undefined ? 'rate-limit variables back to the values found before' : 'rate-limit variables removed');
      if (rec?.scale) lines.push(`replicas ${rec.scale.to} → ${rec.scale.from} (only if still at ${rec.scale.to})`);
      if (ctx.env.config.cloudflare) lines.push(`Cloudflare security level back to ${rec?.cloudflare?.from ?? 'medium'} (only if still under_attack)`);
      return lines;
    },
  },
  steps: [
    recordedStep(),
    wafStep({ revert: true }),
    rateLimitTargetStep({ revert: true }),
    readEnvStep(),
    changeEnvStep<SecurityDdosRevertParams>({
      title: 'Put the rate-limit variables back',
      why: 'Restores the values found by the ddos run (removing the variables it added).',
      change: (_p, state) => state.ratelimit as EnvChange,
      equivalent: (_p, env) => `kubectl set env deployment/${deploymentName(env)} RATE_LIMIT_ENABLED- RATE_LIMIT_REQUESTS- RATE_LIMIT_WINDOW- -n ${ns(env)}`,
    }),
    scaleStep({ revert: true }),
    watchRolloutStep(),
    cloudflareStep({ revert: true }),
  ],
  render(state) {
    const rec = state.recorded as DdosRecord | null | undefined;
    const s = state.scale as ScaleData | null | undefined;
    const c = state.cloudflare as { from: string; to: string } | null | undefined;
    return [
      `from run:   ${rec?.fromRun ?? '(none in the journal)'}`,
      `WAF:        ${state.waf ? 'emergency rules removed' : 'unchanged'}`,
      `rate limit: ${state.apply ? 'restored' : 'unchanged'}`,
      `replicas:   ${s ? `${s.from} → ${s.to}` : 'unchanged'}`,
      `Cloudflare: ${c ? `${c.from} → ${c.to}` : 'unchanged'}`,
      '',
    ].join('\n');
  },
});
