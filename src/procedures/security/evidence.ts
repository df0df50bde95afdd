import { defineProcedure } from '../../core/procedure.js';
import { evidenceStep, renderEvidence } from './evidence-collection.js';

export interface SecurityEvidenceParams {
  dir?: string;
  since?: number;
}

const evidence = evidenceStep<SecurityEvidenceParams>();

export default defineProcedure<SecurityEvidenceParams>({
  name: 'security evidence',
  summary: 'Copy every container log (and previous logs) and the events of the namespace into a new folder with a sha256 manifest',
  seedFixes: [
    '`kubectl logs -n production --all-containers=true` without a pod or selector fails: here every pod and every container (init containers too) is collected, plus the previous instance of each container that restarted.',
    'The seed overwrites world-readable /tmp files: here each run gets a new folder (mode 0700, files 0600) that is never overwritten.',
    'Each log is streamed to its own file (never held in memory), then MANIFEST.sha256 (check with `sha256sum -c`) and manifest.json (pod, container, bytes, sha256, collectedAt) prove the copies were not altered later.',
    'Evidence is kept as it is (nothing redacted in the files), but its contents are never printed or journaled.',
  ],
  params: [
    {
      name: 'dir',
      flag: '--dir <path>',
      description: 'parent folder of the evidence folder (default: security.evidenceDir, else <journal dir>/evidence)',
      type: 'string',
    },
    { name: 'since', flag: '--since <duration>', description: 'only logs and events newer than this (default: everything)', type: 'duration' },
  ],
  examples: [[], ['--since', '1h', '--dir', './evidence']],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'listEvents', 'listPods', 'listReplicaSets', 'streamPodLog'],
  steps: [evidence],
  render(run) {
    const d = run.find(evidence);
    return d ? renderEvidence(d) : '';
  },
});
