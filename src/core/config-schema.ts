import { z } from 'zod';

/** A secret is never written in the file: it is read from an environment variable or a file. */
export const secretRef = z.union([
  z.strictObject({ env: z.string().min(1) }),
  z.strictObject({ file: z.string().min(1) }),
]);
/** A value that may be plain (non-secret) or a secret reference. */
const valueOrRef = z.union([z.string().min(1), secretRef]);

const duration = z.string().regex(/^(\d+|(\d+(\.\d+)?(ms|s|m|h|d))+)$/, 'a duration such as 30s, 5m or 1h');
const k8sName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'a lowercase RFC 1123 name');
const url = z.string().url();

const kubernetes = z.strictObject({
  kubeconfig: z.string().optional(),
  context: z.string().optional(),
  namespace: k8sName.max(63),
  deployment: k8sName,
  container: k8sName.optional(),
  selector: z.string().optional(),
});

const health = z.strictObject({
  url,
  attempts: z.number().int().min(1).max(1000).default(10),
  interval: duration.default('3s'),
  timeout: duration.default('5s'),
  expectStatus: z.number().int().min(100).max(599).default(200),
});

const notify = z.strictObject({
  slack: z.strictObject({ webhook: valueOrRef, channel: z.string().optional() }).optional(),
  command: z.array(z.string().min(1)).min(1).optional(),
});

const environment = z.strictObject({
  description: z.string().optional(),
  protected: z.boolean().default(false),
  kubernetes: kubernetes.optional(),
  health: health.optional(),
  limits: z
    .strictObject({ maxReplicas: z.number().int().min(1).max(10_000).default(50) })
    .default({ maxReplicas: 50 }),
  rollout: z.strictObject({ timeout: duration.default('5m') }).default({ timeout: '5m' }),
  logs: z.strictObject({ tail: z.number().int().min(1).max(100_000).default(100) }).partial().optional(),
  aws: z.strictObject({ region: z.string().min(1), profile: z.string().optional(), endpoint: url.optional() }).optional(),
  rds: z.strictObject({ instance: z.string().min(1) }).optional(),
  postgres: z
    .strictObject({
      url: valueOrRef,
      replicas: z.array(z.strictObject({ name: z.string().optional(), url: valueOrRef })).default([]),
    })
    .optional(),
  redis: z.strictObject({ url: valueOrRef, password: secretRef.optional() }).optional(),
  notify: notify.optional(),
  circuitBreaker: z
    .strictObject({ url, token: secretRef.optional(), method: z.enum(['POST', 'PUT']).default('POST') })
    .optional(),
});

export const configSchema = z.strictObject({
  default: z.string().min(1).optional(),
  journal: z.strictObject({ dir: z.string().min(1) }).optional(),
  environments: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, . _ -'), environment),
});

export type ConfigFile = z.output<typeof configSchema>;
export type EnvironmentConfig = z.output<typeof environment>;
export type SecretRef = z.output<typeof secretRef>;
export type ValueOrRef = z.output<typeof valueOrRef>;

export function formatIssues(error: z.ZodError): string {
  const first = error.issues[0];
  const path = first.path.length ? first.path.join('.') : '(top level)';
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more)` : '';
  return `${path}: ${first.message}${more}`;
}
