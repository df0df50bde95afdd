import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { AUDIT_ON, auditSteps, type AuditMode } from './audit-logging.js';

export interface SecurityAuditModeParams {
  mode: AuditMode;
  container?: string;
  rolloutTimeout?: number;
}

const audit = auditSteps<SecurityAuditModeParams>((p) => p.mode);

export default defineProcedure<SecurityAuditModeParams>({
  name: 'security audit-mode',
  summary: 'Turn debug and audit logging on (LOG_LEVEL=DEBUG, AUDIT_MODE=true) or off again, and wait for the rollout',
  seedFixes: [
    'The seed turns enhanced logging on with no way back: `off` puts back the values the last `on` run found (recorded in the journal), or LOG_LEVEL=INFO without AUDIT_MODE when there was none.',
    'Shows each variable before → after (server-validated), waits for the rollout, and puts the previous environment back if it does not complete.',
  ],
  params: [
    { name: 'mode', argument: '<on|off>', description: 'on or off', type: 'string', required: true, choices: ['on', 'off'] },
    { name: 'container', flag: '--container <name>', description: "container to change (default: the only one, or the environment's)", type: 'k8sName' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the rollout', type: 'duration' },
  ],
  examples: [['on'], ['off']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'patchDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  locks: (_p, env) => [lockTargets.deployment(env)],
  steps: audit.steps,
  render(run) {
    const d = run.find(audit.apply);
    if (!d) return 'audit mode: nothing to change\n';
    if (d.mode === 'on')
      return `audit mode on in ${d.container}: ${Object.entries(AUDIT_ON)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')} (was ${Object.entries(d.prior ?? {})
        .map(([k, v]) => `${k}=${v ?? '∅'}`)
        .join(' ')})\n`;
    return `audit mode off in ${d.container}\n`;
  },
});
