import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { QUARANTINE_LABEL, isolateStep, readNodesStep, renderIsolation, validateNodeNames } from './nodes.js';

export interface SecurityIsolateParams {
  nodes: string[];
}

const nodes = readNodesStep<SecurityIsolateParams>();
const isolate = isolateStep<SecurityIsolateParams>({ compensate: true, nodes });

export default defineProcedure<SecurityIsolateParams>({
  name: 'security isolate',
  summary: `Cordon nodes and label them ${QUARANTINE_LABEL}=true (undo puts back exactly what was there)`,
  seedFixes: [
    'The seed cordons and labels without checking the names: here every name is validated first, and every node must exist before any is touched.',
    "The seed has no way back: each node's cordon and label are recorded, and a failed run uncordons / unlabels only the nodes it changed (a node that was already cordoned stays cordoned).",
    'The plan shows each node before → after, validated by the API server (dryRun=All); protected environments need the environment name typed.',
  ],
  params: [{ name: 'nodes', flag: '--nodes <names>', description: 'comma-separated node names', type: 'list', required: true }],
  examples: [['--nodes', 'node-1,node-2']],
  requires: ['kubernetes'],
  kube: ['getNode', 'patchNode'],
  locks: (p) => p.nodes.map(lockTargets.node),
  validate: (p) => validateNodeNames(p),
  steps: [nodes, isolate],
  render: (run) => renderIsolation(run, { nodes, isolate }),
});
