// Who did what, on the objects themselves: every change a run makes to a Kubernetes object is
// recorded as an Event on it, and a pod-template change carries kubernetes.io/change-cause, so
// `kubectl describe` and `kubectl rollout history` tell the story without this tool.
import type { Change } from '../core/plan.js';
import type { ActingStep } from '../core/runner.js';
import { KubeApiError, type KubeClient, type KubeEventRecord, type PatchType, type V1Deployment, type V1Node, type WriteOptions } from './kube.js';

/** What a run's Events say about it: which procedure, run and operator, and which step is acting now. */
export interface AuditTrail {
  procedure: string;
  runId: string;
  operator: string;
  step(): ActingStep | undefined;
  /** Told once when an Event cannot be written (the change itself stands). */
  warn(message: string): void;
  /** Masks secrets in what leaves for the cluster. */
  redact?(text: string): string;
}

export const CHANGE_CAUSE = 'kubernetes.io/change-cause';
// What the API server keeps of an Event's message is not bounded for core/v1, but events.k8s.io's note is 1 kB.
const MAX_MESSAGE = 1024;

type EventObject = KubeEventRecord['object'];

/** `runbook app restart (run …, by …)`: the change-cause, and the head of every Event message. */
export function changeCause(trail: Pick<AuditTrail, 'procedure' | 'runId' | 'operator'>): string {
  return `runbook ${trail.procedure} (run ${trail.runId}, by ${trail.operator})`;
}

const REF: Record<string, string> = { Deployment: 'deployment', HorizontalPodAutoscaler: 'hpa', Node: 'node' };
const refOf = (o: EventObject) => `${REF[o.kind] ?? o.kind.toLowerCase()}/${o.name}`;
const OBJECT_REF = /\b(deployment|hpa|node)\/[a-z0-9]/;

function describeChange(c: Change): string {
  const arrow = c.before !== undefined || c.after !== undefined ? `: ${c.before ?? '∅'} → ${c.after ?? '∅'}` : '';
  return `${c.action} ${c.target}${arrow}`;
}

/**
 * What the step said it would change, as far as it concerns this object: the previewed changes that
 * name it, else (when none names another object either) all of them; else what the call did.
 */
function story(step: ActingStep | undefined, obj: EventObject, call: string): string {
  const changes = step?.phase === 'run' ? (step.changes ?? []) : [];
  const ref = refOf(obj);
  const mine = changes.filter((c) => c.target === ref || c.target.startsWith(`${ref} `));
  const chosen = mine.length ? mine : changes.length && !changes.some((c) => OBJECT_REF.test(c.target)) ? changes : [];
  return chosen.length ? chosen.map(describeChange).join('; ') : call;
}

function message(trail: AuditTrail, step: ActingStep | undefined, what: string): string {
  const who = `(run ${trail.runId}, by ${trail.operator})`;
  const where = step ? `, ${step.phase === 'undo' ? 'undoing step' : 'step'} "${step.title}" ` : ' ';
  const text = `runbook ${trail.procedure}${where}${who}: ${what}`;
  const safe = trail.redact ? trail.redact(text) : text;
  return safe.length > MAX_MESSAGE ? `${safe.slice(0, MAX_MESSAGE - 1)}…` : safe;
}

/** Does this patch change the pod template (so the controller makes a new ReplicaSet)? */
function touchesTemplate(patch: unknown, type: PatchType): boolean {
  if (type === 'json')
    return Array.isArray(patch) && patch.some((op: { path?: unknown }) => typeof op?.path === 'string' && op.path.startsWith('/spec/template'));
  const spec = (patch as { spec?: { template?: unknown } } | null)?.spec;
  return spec?.template !== undefined && spec.template !== null;
}

/** The same patch, also setting the change-cause annotation (in the same request). */
function withChangeCause(patch: unknown, type: PatchType, cause: string): unknown {
  if (type === 'json')
    return [...(patch as unknown[]), { op: 'add', path: `/metadata/annotations/${CHANGE_CAUSE.replace(/~/g, '~0').replace(/\//g, '~1')}`, value: cause }];
  const p = patch as { metadata?: { annotations?: Record<string, unknown> } };
  return { ...p, metadata: { ...p.metadata, annotations: { ...p.metadata?.annotations, [CHANGE_CAUSE]: cause } } };
}

/** A JSON patch's `add` under /metadata/annotations fails when the object has no annotations yet. */
function missingAnnotations(err: unknown): boolean {
  return err instanceof KubeApiError && (err.status === 422 || err.status === 500 || err.status === 400) && /missing path|annotations/i.test(err.message);
}

/**
 * A KubeClient that records one Event on the object after each successful change a run makes
 * (not dry runs; not Leases or ConfigMaps, which are the tool's own bookkeeping): reason
 * `RunbookChange` while a step runs, `RunbookUndo` while one is undone. An Event that cannot be
 * written never fails the run: the first such failure is one warning.
 */
export function audited(kube: KubeClient, trail: AuditTrail): KubeClient {
  let warned = false;
  const cause = changeCause(trail);

  const record = async (obj: EventObject, call: string, action: string): Promise<void> => {
    const step = trail.step();
    try {
      await kube.recordEvent({
        object: obj,
        type: 'Normal',
        reason: step?.phase === 'undo' ? 'RunbookUndo' : 'RunbookChange',
        message: message(trail, step, story(step, obj, call)),
        action,
      });
    } catch (err) {
      if (warned) return;
      warned = true;
      trail.warn(`could not record the change to ${refOf(obj)} as a Kubernetes Event (${(err as Error).message}); the change itself stands`);
    }
  };

  const deployment = (d: V1Deployment | undefined, name: string): EventObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    name,
    namespace: d?.metadata?.namespace ?? kube.namespace,
    uid: d?.metadata?.uid,
  });
  const hpa = (name: string, uid?: string): EventObject => ({
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    name,
    namespace: kube.namespace,
    uid,
  });
  const node = (n: V1Node | undefined, name: string): EventObject => ({ apiVersion: 'v1', kind: 'Node', name, uid: n?.metadata?.uid });

  const overrides: Partial<KubeClient> = {
    async patchDeployment(name: string, patch: unknown, type: PatchType, opts?: WriteOptions) {
      const template = touchesTemplate(patch, type);
      let d: V1Deployment;
      if (!template) d = await kube.patchDeployment(name, patch, type, opts);
      else {
        try {
          d = await kube.patchDeployment(name, withChangeCause(patch, type, cause), type, opts);
        } catch (err) {
          if (type !== 'json' || !missingAnnotations(err)) throw err;
          d = await kube.patchDeployment(name, patch, type, opts);
        }
      }
      if (!opts?.dryRun) await record(deployment(d, name), `patch deployment/${name}${template ? ' (pod template)' : ''}`, 'Patch');
      return d;
    },
    async scaleDeployment(name: string, replicas: number, opts?: WriteOptions) {
      const s = await kube.scaleDeployment(name, replicas, opts);
      if (!opts?.dryRun)
        await record(
          { ...deployment(undefined, name), namespace: s.metadata?.namespace ?? kube.namespace, uid: s.metadata?.uid },
          `scale deployment/${name} to ${replicas}`,
          'Scale',
        );
      return s;
    },
    async createHpa(h, opts) {
      const made = await kube.createHpa(h, opts);
      const name = made.metadata?.name ?? h.metadata?.name ?? '';
      if (!opts?.dryRun) await record(hpa(name, made.metadata?.uid), `create hpa/${name}`, 'Create');
      return made;
    },
    async patchHpaSpec(name, spec, opts) {
      const h = await kube.patchHpaSpec(name, spec, opts);
      if (!opts?.dryRun) await record(hpa(name, h.metadata?.uid), `patch hpa/${name} spec`, 'Patch');
      return h;
    },
    async deleteHpa(name: string) {
      await kube.deleteHpa(name);
      await record(hpa(name), `delete hpa/${name}`, 'Delete');
    },
    async patchNode(name: string, patch: unknown, type: PatchType, opts?: WriteOptions) {
      const n = await kube.patchNode(name, patch, type, opts);
      if (!opts?.dryRun) await record(node(n, name), `patch node/${name}`, 'Patch');
      return n;
    },
  };

  return new Proxy(kube, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && prop in overrides) return overrides[prop as keyof KubeClient];
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
