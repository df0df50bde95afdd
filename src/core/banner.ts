import type { ResolvedEnvironment } from './config.js';
import { describeRef } from './config.js';
import type { Procedure } from './procedure.js';
import type { Redactor } from './redact.js';

function hostOf(ref: unknown): string | undefined {
  if (typeof ref !== 'string') return ref ? describeRef(ref as never) : undefined;
  try {
    const u = new URL(ref);
    return `${u.hostname}${u.port ? `:${u.port}` : ''}`;
  } catch {
    return ref;
  }
}

/** The target of a change, never in doubt: environment, kube context and namespace, AWS, DB and Redis hosts. */
export function targetBanner(proc: Procedure, env: ResolvedEnvironment, redactor: Redactor): string[] {
  const c = env.config;
  const parts: string[] = [];
  const uses = new Set(proc.requires);
  if (c.kubernetes && uses.has('kubernetes')) {
    parts.push(`kube ${c.kubernetes.context ?? '(current context)'} ns/${c.kubernetes.namespace} deploy/${c.kubernetes.deployment}`);
  }
  if (c.aws && (uses.has('aws') || uses.has('rds')))
    parts.push(`aws ${c.aws.profile ? `${c.aws.profile}@` : ''}${c.aws.region}${c.aws.endpoint ? ` via ${c.aws.endpoint}` : ''}`);
  if (c.rds && uses.has('rds')) parts.push(`rds ${c.rds.instance}`);
  if (c.postgres && uses.has('postgres')) parts.push(`db ${hostOf(c.postgres.url)}`);
  if (c.redis && uses.has('redis'))
    parts.push(`redis ${c.redis.url ? hostOf(c.redis.url) : `cluster ${c.redis.nodes?.join(',')}`}${c.redis.db ? ` db ${c.redis.db}` : ''}`);
  const prot = c.protected ? ' (PROTECTED)' : '';
  const source = env.builtIn ? ' [built-in example]' : '';
  return [redactor.text(`▶ runbook ${proc.name} → ${env.name}${prot}${source}`), ...parts.map((p) => redactor.text(`  ${p}`))];
}
