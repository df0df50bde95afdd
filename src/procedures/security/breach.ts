import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { announceStep } from '../shared/notify.js';
import { auditSteps } from './audit-logging.js';
import { evidenceStep, renderEvidence } from './evidence-collection.js';
import { isolateStep, readNodesStep, renderIsolation, validateNodeNames } from './nodes.js';
import { rotateStep } from './rotation.js';

export interface SecurityBreachParams {
  nodes: string[];
  dir?: string;
  since?: number;
  container?: string;
  rolloutTimeout?: number;
}

const nodes = readNodesStep<SecurityBreachParams>();
// No compensation: on a suspected breach, isolation stays whatever happens later.
const isolate = isolateStep<SecurityBreachParams>({ compensate: false, nodes });
const evidence = evidenceStep<SecurityBreachParams>();
const rotate = rotateStep<SecurityBreachParams>();
const audit = auditSteps<SecurityBreachParams>(() => 'on', { canTurnOff: false });

const announce = announceStep<SecurityBreachParams>({
  id: 'announce',
  title: 'Notify the security team',
  why: 'The security team must hear at once what was isolated and where the evidence is; the message carries the run id for the timeline.',
  message(ctx) {
    const mention = ctx.env.config.security?.notifyMention;
    const isolated = ctx.find(isolate)?.nodes.map((n) => n.name) ?? ctx.params.nodes;
    const folder = ctx.find(evidence)?.folder;
    const rotated = ctx.find(rotate)?.commands.length;
    return [
      `${mention ? `${mention} ` : ''}Suspected breach in ${ctx.env.name} - immediate response required.`,
      `Nodes isolated (cordoned, quarantine=true): ${isolated.join(', ')}.`,
      folder ? `Evidence: ${folder}.` : 'Evidence: being collected.',
      rotated ? `Credentials rotated (${rotated} command${rotated > 1 ? 's' : ''}).` : '',
      `Audit logging on. Run ${ctx.runId}.`,
    ]
      .filter(Boolean)
      .join(' ');
  },
});

export default defineProcedure<SecurityBreachParams>({
  name: 'security breach',
  summary: 'Suspected breach: isolate nodes → preserve evidence → rotate credentials → audit logging on → notify the security team',
  seedFixes: [
    "One run in the seed's order, each step gated by its own risk, every node name checked and every node found before anything changes.",
    'Isolation is deliberately NOT undone when a later step fails: on a suspected breach, un-isolating nodes because (say) the audit-mode rollout stalled would help the intruder. The isolate step has no compensation here (`security isolate` alone has one).',
    'Evidence is collected before audit mode rolls the pods (their logs would be gone) into a new private folder with a sha256 manifest, instead of overwriting world-readable /tmp files.',
    'Rotation runs the configured commands as argument arrays (skipped when none are configured) with masked output; audit mode is recorded so `security audit-mode off` puts back what was there.',
    'The security team is told through the configured notify channels with what was done and where the evidence is, instead of a script path relative to the working directory.',
  ],
  params: [
    { name: 'nodes', flag: '--nodes <names>', description: 'comma-separated names of the affected nodes', type: 'list', required: true },
    { name: 'dir', flag: '--dir <path>', description: 'parent folder of the evidence folder', type: 'string' },
    { name: 'since', flag: '--since <duration>', description: 'only logs and events newer than this', type: 'duration' },
    { name: 'container', flag: '--container <name>', description: 'container for the audit-mode variables', type: 'k8sName' },
    { name: 'rolloutTimeout', flag: '--rollout-timeout <duration>', description: 'how long to wait for the audit-mode rollout', type: 'duration' },
  ],
  examples: [['--nodes', 'node-1,node-2']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'getNode', 'patchNode', 'listEvents', 'listPods', 'listReplicaSets', 'patchDeployment', 'watchDeployment', 'streamPodLog'],
  // The nodes it isolates, and the deployment whose logging it changes.
  locks: (p, env) => [...p.nodes.map(lockTargets.node), lockTargets.deployment(env)],
  validate: (p) => validateNodeNames(p),
  steps: [nodes, isolate, evidence, rotate, ...audit.steps, announce],
  render(run) {
    const told = run.find(announce);
    const notice = told?.sent.length
      ? `security team notified via ${told.sent.join(', ')}\n`
      : 'security team NOT notified by the tool (no notify channel answered): tell them now\n';
    const collected = run.find(evidence);
    return renderIsolation(run, { nodes, isolate }) + (collected ? renderEvidence(collected) : '') + notice;
  },
});
