import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { QUARANTINE_LABEL, isolateStep, readNodesStep, validateNodeNames, type IsolateData, type NodePrior } from './nodes.js';

export interface SecurityIsolateParams {
  nodes: string[];
}

export function renderIsolation(state: Record<string, unknown>): string {
  const priors = (state.nodes as { nodes: NodePrior[] } | undefined)?.nodes ?? [];
  const done = new Map(((state.isolate as IsolateData | undefined)?.nodes ?? []).map((n) => [n.name, n]));
  const rows = priors.map((p) => {
    const d = done.get(p.name);
    const change = d ? [d.cordoned && 'cordoned', d.labelled && 'labelled'].filter(Boolean).join(' + ') || 'already isolated' : 'already isolated';
    return [p.name, p.unschedulable ? 'yes' : 'no', p.quarantine ?? '', change];
  });
  return table(['NODE', 'WAS CORDONED', `WAS ${QUARANTINE_LABEL.toUpperCase()}`, 'CHANGE'], rows);
}

export default defineProcedure<SecurityIsolateParams>({
  name: 'security isolate',
  summary: `Cordon nodes and label them ${QUARANTINE_LABEL}=true (undo puts back exactly what was there)`,
  seedFixes: [
    'The seed cordons and labels without checking the names: here every name is validated first, and every node must exist before any is touched.',
    'The seed has no way back: each node\'s cordon and label are recorded, and a failed run uncordons / unlabels only the nodes it changed (a node that was already cordoned stays cordoned).',
    'The plan shows each node before → after, validated by the API server (dryRun=All); protected environments need the environment name typed.',
  ],
  params: [{ name: 'nodes', flag: '--nodes <names>', description: 'comma-separated node names', type: 'list', required: true }],
  examples: [['--nodes', 'node-1,node-2']],
  requires: ['kubernetes'],
  kube: ['getNode', 'patchNode'],
  locks: (p) => p.nodes.map(lockTargets.node),
  validate: (p) => validateNodeNames(p),
  steps: [readNodesStep(), isolateStep({ compensate: true })],
  render: (state) => renderIsolation(state),
});
