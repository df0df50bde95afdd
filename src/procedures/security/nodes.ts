import type { V1Node } from '@kubernetes/client-node';
import type { KubeClient } from '../../clients/kube.js';
import { StepError, UsageError, errorMessage } from '../../core/errors.js';
import { validateK8sName } from '../../core/params.js';
import type { Change, RunData, Step, StepRef } from '../../core/procedure.js';
import { table } from '../../core/table.js';

export const QUARANTINE_LABEL = 'quarantine';

/** What a node looked like before isolation: enough to put back exactly that. */
export interface NodePrior {
  name: string;
  unschedulable: boolean;
  /** The quarantine label's value, or null when the node had none. */
  quarantine: string | null;
}

/** What one isolate run changed, per node (a node already cordoned is not "cordoned by us"). */
export interface IsolateData {
  nodes: Array<NodePrior & { cordoned: boolean; labelled: boolean }>;
}

/** What the `nodes` step read: every named node as it was before the run. */
export interface NodesData {
  nodes: NodePrior[];
}

interface NodesParams {
  nodes: string[];
}

/** Node names are RFC 1123 subdomains; checked (and de-duplicated) before anything is contacted. */
export function validateNodeNames(p: NodesParams): void {
  if (!p.nodes || p.nodes.length === 0) throw new UsageError('--nodes needs at least one node name', 'e.g. --nodes node-1,node-2 (see: kubectl get nodes)');
  for (const n of p.nodes) validateK8sName(n, 'node name');
  p.nodes = [...new Set(p.nodes)];
}

function priorOf(n: V1Node): NodePrior {
  return { name: n.metadata!.name!, unschedulable: n.spec?.unschedulable === true, quarantine: n.metadata?.labels?.[QUARANTINE_LABEL] ?? null };
}

/** What `kubectl cordon` sends (strategic merge on spec.unschedulable); null removes the field, as `uncordon` leaves it. */
const cordonPatch = (on: boolean) => ({ spec: { unschedulable: on ? true : null } });
/** What `kubectl label` sends (a JSON merge patch on metadata.labels); null removes the label. */
const labelPatch = (value: string | null) => ({ metadata: { labels: { [QUARANTINE_LABEL]: value } } });

/** Step: read every named node, failing before any change when one does not exist. */
export function readNodesStep<P extends NodesParams>(): Step<P, NodesData> {
  return {
    id: 'nodes',
    title: 'Check the nodes exist and record their state',
    why: "Every node is checked before any is touched (a typo must not leave half the nodes isolated), and each one's cordon and label are recorded so an undo puts back exactly what was there.",
    risk: 'read',
    equivalent: (p) => `kubectl get nodes ${p.nodes.join(' ')} -L ${QUARANTINE_LABEL} -o wide`,
    async run(ctx): Promise<NodesData> {
      const kube = await ctx.clients.kube();
      const found = await Promise.all(ctx.params.nodes.map((n) => kube.getNode(n)));
      const missing = ctx.params.nodes.filter((_, i) => found[i] === null);
      if (missing.length) {
        throw new StepError(
          `no such node${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}; nothing was changed`,
          'list the nodes with: kubectl get nodes',
        );
      }
      return { nodes: found.map((n) => priorOf(n!)) };
    },
    postcondition: {
      describe: 'every node still exists and still has what it had of the isolation when read',
      // What was read is what an undo puts back, so it stays unless the isolate would skip a node as
      // already cordoned (or labelled) that is not any more; then it is read again (a read: safe).
      async check(ctx, data) {
        const kube = await ctx.clients.kube();
        const off: string[] = [];
        for (const p of data.nodes) {
          const n = await kube.getNode(p.name);
          const now = n ? priorOf(n) : null;
          if (!now) off.push(`node/${p.name} is gone`);
          else if ((p.unschedulable && !now.unschedulable) || (p.quarantine === 'true' && now.quarantine !== 'true'))
            off.push(`node/${p.name} is ${describeNode(now)} now, ${describeNode(p)} was read`);
        }
        return off.length === 0 ? { holds: true } : { holds: false, found: off.join('; ') };
      },
    },
  };
}

function describeNode(p: NodePrior): string {
  return `${p.unschedulable ? 'unschedulable' : 'schedulable'}, ${QUARANTINE_LABEL}=${p.quarantine ?? '∅'}`;
}

async function revert(kube: KubeClient, done: IsolateData['nodes']): Promise<void> {
  for (const n of [...done].reverse()) {
    if (n.labelled) await kube.patchNode(n.name, labelPatch(n.quarantine), 'merge');
    if (n.cordoned) await kube.patchNode(n.name, cordonPatch(false), 'strategic');
  }
}

function byHand(done: IsolateData['nodes']): string {
  const cmds: string[] = [];
  const uncordon = done.filter((n) => n.cordoned).map((n) => n.name);
  if (uncordon.length) cmds.push(`kubectl uncordon ${uncordon.join(' ')}`);
  const unlabel = done.filter((n) => n.labelled && n.quarantine === null).map((n) => n.name);
  if (unlabel.length) cmds.push(`kubectl label nodes ${unlabel.join(' ')} ${QUARANTINE_LABEL}-`);
  for (const n of done.filter((x) => x.labelled && x.quarantine !== null))
    cmds.push(`kubectl label nodes ${n.name} ${QUARANTINE_LABEL}=${n.quarantine} --overwrite`);
  return cmds.join(' && ') || '(nothing to undo)';
}

/**
 * Step: cordon the nodes and label them quarantine=true. With `compensate`, a failed run puts back
 * only what this step changed; without it (the breach response) isolation stays whatever happens later.
 * `nodes` is the readNodesStep() of the same procedure: the nodes as they were.
 */
export function isolateStep<P extends NodesParams>(opts: { compensate: boolean; nodes: StepRef<NodesData> }): Step<P, IsolateData> {
  const step: Step<P, IsolateData> = {
    id: 'isolate',
    title: `Cordon the nodes and label them ${QUARANTINE_LABEL}=true`,
    why: 'Cordoning stops new pods landing on a possibly compromised node (running pods stay, as evidence); the label marks the nodes for people, policies and the incident report.',
    risk: 'write',
    // Reversible, but it takes capacity out of a production cluster: typed confirmation when protected.
    severe: true,
    equivalent: (p) => `kubectl cordon ${p.nodes.join(' ')} && kubectl label nodes ${p.nodes.join(' ')} ${QUARANTINE_LABEL}=true --overwrite`,
    async plan(ctx) {
      const priors = ctx.get(opts.nodes).nodes;
      const kube = await ctx.clients.kube();
      const changes: Change[] = [];
      for (const n of priors) {
        const cordon = !n.unschedulable;
        const label = n.quarantine !== 'true';
        if (!cordon && !label) continue;
        if (cordon) await kube.patchNode(n.name, cordonPatch(true), 'strategic', { dryRun: true });
        if (label) await kube.patchNode(n.name, labelPatch('true'), 'merge', { dryRun: true });
        const after: NodePrior = { ...n, unschedulable: true, quarantine: 'true' };
        changes.push({
          action: [cordon && 'cordon', label && 'label'].filter(Boolean).join(' + '),
          target: `node/${n.name}`,
          before: describeNode(n),
          after: describeNode(after),
          validated: true,
        });
      }
      return changes;
    },
    async run(ctx): Promise<IsolateData> {
      const priors = ctx.get(opts.nodes).nodes;
      const kube = await ctx.clients.kube();
      const done: IsolateData['nodes'] = [];
      for (const n of priors) {
        const rec = { ...n, cordoned: false, labelled: false };
        try {
          if (!n.unschedulable) {
            await kube.patchNode(n.name, cordonPatch(true), 'strategic');
            rec.cordoned = true;
          }
          if (n.quarantine !== 'true') {
            await kube.patchNode(n.name, labelPatch('true'), 'merge');
            rec.labelled = true;
          }
          done.push(rec);
        } catch (err) {
          done.push(rec);
          const changed = done.filter((d) => d.cordoned || d.labelled);
          if (opts.compensate && changed.length) {
            try {
              await revert(kube, changed);
            } catch (undoErr) {
              throw new StepError(
                `isolating node/${n.name} failed (${errorMessage(err)}), and putting back the nodes already changed failed too: ${errorMessage(undoErr)}`,
                `run by hand: ${byHand(changed)}`,
              );
            }
            throw new StepError(`isolating node/${n.name} failed: ${errorMessage(err)}; the nodes already changed were put back`);
          }
          const isolated = changed.map((d) => d.name);
          throw new StepError(
            `isolating node/${n.name} failed: ${errorMessage(err)}${isolated.length ? `; ${isolated.join(', ')} stay isolated` : ''}`,
            `isolate the rest by hand: kubectl cordon ${n.name} && kubectl label nodes ${n.name} ${QUARANTINE_LABEL}=true --overwrite`,
          );
        }
        ctx.log(`node/${n.name}: ${describeNode({ ...n, unschedulable: true, quarantine: 'true' })}`);
      }
      return { nodes: done };
    },
    postcondition: {
      describe: `every node is cordoned and labelled ${QUARANTINE_LABEL}=true`,
      // Cordoning and labelling again only stops new pods landing there (running pods stay): safe, and gated again.
      async check(ctx) {
        const kube = await ctx.clients.kube();
        const off: string[] = [];
        for (const name of ctx.params.nodes) {
          const n = await kube.getNode(name);
          const now = n ? priorOf(n) : null;
          if (!now) off.push(`node/${name} is gone`);
          else if (!now.unschedulable || now.quarantine !== 'true') off.push(`node/${name} is ${describeNode(now)}`);
        }
        return off.length === 0 ? { holds: true } : { holds: false, found: off.join('; ') };
      },
    },
  };
  if (!opts.compensate) return step;
  return {
    ...step,
    async undo(ctx, data) {
      await revert(await ctx.clients.kube(), data.nodes);
    },
    undoByHand: (_ctx, data) => byHand(data.nodes),
  };
}

/** Each node as it was, and what the isolate step changed on it (a node skipped or already isolated shows as such). */
export function renderIsolation(run: RunData, steps: { nodes: StepRef<NodesData>; isolate: StepRef<IsolateData> }): string {
  const priors = run.find(steps.nodes)?.nodes ?? [];
  const done = new Map((run.find(steps.isolate)?.nodes ?? []).map((n) => [n.name, n]));
  const rows = priors.map((p) => {
    const d = done.get(p.name);
    const change = d ? [d.cordoned && 'cordoned', d.labelled && 'labelled'].filter(Boolean).join(' + ') || 'already isolated' : 'already isolated';
    return [p.name, p.unschedulable ? 'yes' : 'no', p.quarantine ?? '', change];
  });
  return table(['NODE', 'WAS CORDONED', `WAS ${QUARANTINE_LABEL.toUpperCase()}`, 'CHANGE'], rows);
}
