import { errorMessage, UsageError } from '../../core/errors.js';
import { quantityValue } from '../../core/params.js';
import type { Step, StepContext } from '../../core/procedure.js';
import type { ResolvedEnvironment } from '../../core/config.js';
import type { PodMetrics, V1Deployment } from '../../clients/kube.js';

/** What a tolerant step returns when the step it wraps failed: the message, as data. */
export interface Failed {
  error: string;
}

export function failed(x: unknown): x is Failed {
  return typeof x === 'object' && x !== null && 'error' in x && typeof x.error === 'string';
}

/**
 * Runs another procedure's read step inside a composite: when its service is configured, and
 * turning its failure into data and a warning, because one unreachable part must not hide the others.
 */
export function tolerant<P, D>(step: Step<P, D>, when: (env: ResolvedEnvironment) => boolean): Step<P, D | Failed> {
  return {
    ...step,
    when: (_p, env) => when(env),
    async run(ctx: StepContext<P>): Promise<D | Failed> {
      try {
        return await step.run(ctx);
      } catch (err) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        if (err instanceof UsageError) throw err;
        const message = errorMessage(err);
        ctx.reporter.warn(`${step.title}: ${ctx.redactor.text(message)}`);
        return { error: message };
      }
    },
  };
}

/** One pod's CPU use against its containers' requests and limits (cores). */
export interface PodCpu {
  pod: string;
  cpu: number;
  request: number | null;
  limit: number | null;
  /** Usage ÷ limit (or ÷ request without a limit). */
  saturation: number | null;
}

function sumQuantity(values: Array<string | undefined>): number | null {
  const defined = values.filter((v): v is string => v !== undefined);
  if (!defined.length || defined.length !== values.length) return null;
  return defined.reduce((n, v) => n + quantityValue(v), 0);
}

/** CPU per pod from metrics.k8s.io, compared with the deployment's per-pod requests and limits. */
export function podCpu(d: V1Deployment, metrics: PodMetrics[]): PodCpu[] {
  const containers = d.spec?.template.spec?.containers ?? [];
  const request = sumQuantity(containers.map((c) => c.resources?.requests?.cpu));
  const limit = sumQuantity(containers.map((c) => c.resources?.limits?.cpu));
  return metrics
    .map((m) => {
      const cpu = m.containers.reduce((n, c) => n + (quantityValue(c.usage.cpu) || 0), 0);
      const base = limit ?? request;
      return { pod: m.name, cpu, request, limit, saturation: base ? cpu / base : null };
    })
    .sort((a, b) => (b.saturation ?? 0) - (a.saturation ?? 0));
}

/** Replicas that would bring the average saturation back to `target`, capped by the environment's limit. */
export function replicasFor(current: number, avgSaturation: number, target: number, max: number): number {
  return Math.min(max, Math.max(current + 1, Math.ceil((current * avgSaturation) / target)));
}
