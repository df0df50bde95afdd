import { z } from 'zod';
import { durationMs, MAX_DURATION_MS, MAX_WAIT_MS } from './duration.js';
import { suggest } from './suggest.js';

/** A secret is never written in the file: it is read from an environment variable or a file. */
export const secretRef = z.union([z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })]);
/** A value that may be plain (non-secret) or a secret reference. */
const valueOrRef = z.union([z.string().min(1), secretRef]);

/** A duration always has a unit (is "10" seconds or minutes?) and stays within a sane limit. */
const durationWithin = (maxMs: number, limit: string) =>
  z
    .string()
    .refine((s) => durationMs(s) !== null, 'a duration with a unit, such as 30s, 5m or 1h')
    .refine((s) => (durationMs(s) ?? 0) <= maxMs, `at most ${limit}`);
/** Timeouts and intervals: Node's timers cannot wait longer. */
const duration = durationWithin(MAX_WAIT_MS, '24d');
/** Ages and lookbacks. */
const age = durationWithin(MAX_DURATION_MS, '365d');
/** journal.keep: at least a day (a run in progress is never that old), at most ten years. */
const journalKeep = durationWithin(3650 * 86_400_000, '3650d').refine((s) => (durationMs(s) ?? 0) >= 86_400_000, 'at least 1d');
const k8sName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'a lowercase RFC 1123 name');
const url = z.string().url();
/** RDS DB instance identifiers: a letter, then letters, digits and single hyphens, at most 63. */
const rdsIdentifier = z
  .string()
  .max(63)
  .regex(/^[A-Za-z](?!.*--)[A-Za-z0-9-]*[A-Za-z0-9]$|^[A-Za-z]$/, 'an RDS identifier: a letter, then letters, digits and hyphens');

const kubernetes = z.strictObject({
  kubeconfig: z.string().optional(),
  context: z.string().optional(),
  /** Default: the kubeconfig context's namespace, else "default" (as kubectl). */
  namespace: k8sName.max(63).optional(),
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

// --- dr, backups, certs, logs (issue 5) ---
const s3Url = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'an S3 URL such as s3://bucket/prefix');
/** A Route 53 change batch: a file path (relative to the config file) or inline; validated by `dr` before anything is contacted. */
const changeBatch = z.union([z.string().min(1), z.record(z.string(), z.unknown())]);
const drHealth = z.strictObject({
  url,
  attempts: z.number().int().min(1).max(1000).default(10),
  interval: duration.default('30s'),
  timeout: duration.default('5s'),
  expectStatus: z.number().int().min(100).max(599).default(200),
});
const ecsSide = z.strictObject({
  region: z.string().min(1),
  cluster: z.string().min(1),
  service: z.string().min(1),
  /** Desired count while this side serves traffic (failover scales DR to it; failback scales the primary to it). */
  desiredCount: z.number().int().min(1).max(10_000).optional(),
  /** Desired count when this side is stopped (default 0). */
  standbyCount: z.number().int().min(0).max(10_000).default(0),
  health: drHealth.optional(),
});
const dr = z.strictObject({
  route53: z.strictObject({
    hostedZoneId: z.string().min(1),
    failover: changeBatch,
    failback: changeBatch.optional(),
    syncTimeout: duration.default('5m'),
    syncInterval: duration.default('5s'),
  }),
  primary: ecsSide,
  dr: ecsSide,
});
const backups = z.strictObject({
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name'),
  prefix: z.string().default(''),
  region: z.string().min(1).optional(),
  /** The newest backup must be younger than this (a nightly job: e.g. 26h). */
  maxAge: age.optional(),
  pgRestore: z.string().min(1).default('pg_restore'),
  restoreTest: z
    .strictObject({
      /** The TEST PostgreSQL (a role allowed to CREATE DATABASE); never production. */
      url: valueOrRef,
      table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, 'a table name, optionally schema-qualified'),
      minRows: z.number().int().min(0).default(1),
    })
    .optional(),
});
const certs = z.strictObject({
  hosts: z.array(z.string().min(1)).default([]),
  minDays: z.number().int().min(0).max(3650).default(14),
  /** Extra CA bundle (PEM file) trusted besides the system roots. */
  ca: z.string().min(1).optional(),
  timeout: duration.default('10s'),
  certbot: z.array(z.string().min(1)).min(1).default(['certbot', 'renew']),
  reload: z.array(z.string().min(1)).min(1).default(['nginx', '-s', 'reload']),
  /** Certificate files certbot writes (checked after renewal, before the reload). */
  files: z.array(z.string().min(1)).default([]),
});

/** Redis: one server (`url`, `rediss://` for TLS, `/N` or `db` for the database) or a cluster's seed nodes. */
const redis = z
  .strictObject({
    url: valueOrRef.optional(),
    nodes: z
      .array(z.string().regex(/^[^\s:/@]+:\d{1,5}$/, 'host:port'))
      .min(1)
      .optional(),
    username: valueOrRef.optional(),
    password: secretRef.optional(),
    db: z.number().int().min(0).max(100_000).optional(),
    /** TLS for `nodes` (a `rediss://` URL turns it on by itself); `ca` is a PEM file. */
    tls: z
      .union([z.boolean(), z.strictObject({ ca: z.string().min(1).optional(), servername: z.string().min(1).optional(), insecure: z.boolean().optional() })])
      .optional(),
    connectTimeout: duration.optional(),
  })
  .refine((r) => (r.url === undefined) !== (r.nodes === undefined), { message: "give exactly one of url (one server) or nodes (a cluster's seed nodes)" })
  .refine((r) => r.nodes === undefined || !r.db, { message: 'a Redis Cluster has only database 0', path: ['db'] });

/** `cache warm`: per type, the warmer commands (argument arrays, never shell strings). */
const cache = z.strictObject({
  warmers: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, . _ -'), z.array(z.array(z.string().min(1)).min(1)).min(1)).default({}),
  /** Limit for each warmer command. */
  timeout: duration.default('10m'),
  cwd: z.string().min(1).optional(),
});

// --- incident and outage ---
/** The metrics endpoint (GET, JSON); `errorRateField` is a dot path into the answer, else found by name. */
const metrics = z.strictObject({
  url,
  token: secretRef.optional(),
  errorRateField: z.string().min(1).optional(),
  /** How the endpoint reports the rate: 0.05 (fraction) or 5 (percent). */
  errorRateUnit: z.enum(['fraction', 'percent']).default('fraction'),
  timeout: duration.default('10s'),
});
const accessLogs = z.strictObject({
  files: z.array(z.string().min(1)).min(1),
  format: z.enum(['nginx-combined']).default('nginx-combined'),
});
/** A status page API base, e.g. https://api.statuspage.io/v1/pages/PAGE_ID. */
const statuspage = z.strictObject({ url, token: secretRef, timeout: duration.default('10s') });
const dependency = z.strictObject({
  name: z.string().min(1),
  url,
  timeout: duration.default('5s'),
  expectStatus: z.number().int().min(100).max(599).optional(),
});

// --- quick reference (runbook info) ---
const quickContact = z.strictObject({
  role: z.string().min(1),
  name: z.string().min(1),
  phone: z.string().min(1).optional(),
  email: z.string().min(1).optional(),
  slack: z.string().min(1).optional(),
});
/** `credentials` says how to sign in (SSO, MFA, a vault path): never a password. */
const quickResource = z.strictObject({ name: z.string().min(1), url, credentials: z.string().min(1).optional() });

/** `security …`: secret rotation commands (argument arrays), where evidence goes, and who hears of a breach. */
const security = z.strictObject({
  rotate: z.array(z.array(z.string().min(1)).min(1)).default([]),
  /** Limit for each rotation command. */
  rotateTimeout: duration.default('10m'),
  /** Parent folder of evidence folders (default: <journal dir>/evidence). */
  evidenceDir: z.string().min(1).optional(),
  /** Put in front of the breach announcement, e.g. "@security-oncall". */
  notifyMention: z.string().min(1).optional(),
});

/** One WAFv2 rule as UpdateWebACL takes it (other members are passed through as written). */
export const wafRuleSchema = z.looseObject({
  Name: z.string().min(1).max(128),
  Priority: z.number().int().min(0),
  Statement: z.record(z.string(), z.unknown()),
  VisibilityConfig: z.strictObject({ SampledRequestsEnabled: z.boolean(), CloudWatchMetricsEnabled: z.boolean(), MetricName: z.string().min(1) }),
});
/** `security ddos`: Shield DRT role, emergency WAF rules (inline, or a JSON file path), rate limit, replicas. */
const ddos = z.strictObject({
  shield: z.strictObject({ drtRoleArn: z.string().regex(/^arn:aws[\w-]*:iam::\d{12}:role\/.+$/, 'an IAM role ARN') }).optional(),
  waf: z
    .strictObject({
      scope: z.enum(['CLOUDFRONT', 'REGIONAL']),
      name: z.string().min(1),
      id: z.string().min(1),
      region: z.string().min(1).optional(),
      rules: z.union([z.array(wafRuleSchema).min(1), z.string().min(1)]),
    })
    .optional(),
  rateLimit: z
    .strictObject({ requests: z.number().int().min(1).default(10), window: z.number().int().min(1).default(60) })
    .default({ requests: 10, window: 60 }),
  replicas: z.number().int().min(1).optional(),
});
const cloudflare = z.strictObject({
  api: url.default('https://api.cloudflare.com/client/v4'),
  zoneId: z.string().regex(/^[A-Za-z0-9]+$/, 'a zone id'),
  token: secretRef,
});

/**
 * Two-person approval (issue 15): `required: 2` makes the gates `for` covers wait for a second, different
 * authenticated user (`runbook approve`), through a request object in `namespace`. `required: 1` is off.
 */
const approval = z.strictObject({
  required: z.union([z.literal(1), z.literal(2)]),
  for: z
    .array(z.enum(['destructive', 'write']))
    .min(1)
    .refine((f) => f.includes('destructive'), 'must include destructive (write adds writes to it)')
    .default(['destructive']),
  namespace: k8sName.max(63),
  timeout: durationWithin(86_400_000, '24h')
    .refine((s) => (durationMs(s) ?? 0) >= 1000, 'at least 1s')
    .default('15m'),
});

/** S3 bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens, no "..", not an IP address. */
const s3Bucket = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)')
  .refine((b) => !b.includes('..') && !/^\d+\.\d+\.\d+\.\d+$/.test(b), 'an S3 bucket name (no "..", not an IP address)');
/** A key prefix: path segments of S3's safe characters; slashes at either end are dropped. */
const s3Prefix = z
  .string()
  .transform((p) => p.replace(/^\/+|\/+$/g, ''))
  .refine((p) => p === '' || /^[A-Za-z0-9!_.*'()-]+(\/[A-Za-z0-9!_.*'()-]+)*$/.test(p), "a key prefix: letters, digits and !_.*'()- in segments separated by /")
  .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), 'a key prefix without "." or ".." segments');

const environmentFields = z.strictObject({
  description: z.string().optional(),
  approval: approval.optional(),
  protected: z.boolean().default(false),
  kubernetes: kubernetes.optional(),
  health: health.optional(),
  limits: z.strictObject({ maxReplicas: z.number().int().min(1).max(10_000).default(50) }).default({ maxReplicas: 50 }),
  rollout: z.strictObject({ timeout: duration.default('5m') }).default({ timeout: '5m' }),
  logs: z
    .strictObject({
      tail: z.number().int().min(1).max(100_000).default(100),
      /** `logs rotate`: the directory, thresholds, archive (s3://bucket/prefix) and an optional logrotate command. */
      dir: z.string().min(1),
      compressAfter: age,
      deleteAfter: age,
      archive: s3Url,
      logrotate: z.array(z.string().min(1)).min(1),
      parallel: z.number().int().min(1).max(64),
    })
    .partial()
    .optional(),
  aws: z.strictObject({ region: z.string().min(1), profile: z.string().optional(), endpoint: url.optional() }).optional(),
  rds: z
    .strictObject({
      instance: rdsIdentifier,
      /** The PostgreSQL served by this instance, for `SELECT 1` after a reboot (default: postgres.url). */
      url: valueOrRef.optional(),
      /** How long to wait for the instance to report `available`, and how often to ask. */
      waitTimeout: duration.default('20m'),
      pollInterval: duration.default('10s'),
      /** How long `SELECT 1` is retried once the instance is available. */
      connectTimeout: duration.default('5m'),
      recovery: z
        .strictObject({
          /** The restored instance (default: <instance>-recovered). */
          instance: rdsIdentifier.optional(),
          /** The restored database for the verify query (default: rds.url or postgres.url with the restored endpoint's host and port). */
          url: valueOrRef.optional(),
          /** Run read-only on the restored database (default: SELECT count(*) FROM <verifyTable>). */
          verifyQuery: z.string().min(1).optional(),
          verifyTable: z
            .string()
            .regex(/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/, 'a table name, optionally schema-qualified (schema.table)')
            .default('users'),
          /** The deployment variable that points the app at its database. */
          hostVariable: z
            .string()
            .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
            .default('DATABASE_HOST'),
        })
        .default({ verifyTable: 'users', hostVariable: 'DATABASE_HOST' }),
    })
    .optional(),
  postgres: z
    .strictObject({
      url: valueOrRef,
      replicas: z.array(z.strictObject({ name: z.string().optional(), url: valueOrRef })).default([]),
    })
    .optional(),
  redis: redis.optional(),
  cache: cache.optional(),
  notify: notify.optional(),
  circuitBreaker: z.strictObject({ url, token: secretRef.optional(), method: z.enum(['POST', 'PUT']).default('POST') }).optional(),
  dr: dr.optional(),
  backups: backups.optional(),
  certs: certs.optional(),
  security: security.optional(),
  /** `runbook info`: who to call, and where the critical consoles are (the seed's Quick Reference). */
  contacts: z.array(quickContact).optional(),
  resources: z.array(quickResource).optional(),
  metrics: metrics.optional(),
  accessLogs: accessLogs.optional(),
  statuspage: statuspage.optional(),
  /** `outage start`: the services whose pods are listed (label app=<name>). */
  services: z.array(k8sName.max(63)).optional(),
  dependencies: z.array(dependency).optional(),
  ddos: ddos.optional(),
  cloudflare: cloudflare.optional(),
});

const environment = environmentFields.superRefine((env, ctx) => {
  // Never silently skipped: the request lives in Kubernetes, and identities come from its API server.
  if (env.approval && env.approval.required > 1 && !env.kubernetes)
    ctx.addIssue({
      code: 'custom',
      path: ['approval'],
      message: 'two-person approval needs a kubernetes section in this environment (requests and identities live there)',
    });
});

export const configSchema = z.strictObject({
  default: z.string().min(1).optional(),
  journal: z
    .strictObject({
      dir: z.string().min(1).optional(),
      /** How long runs are kept (by their start); older ones are pruned at a changing run's start, at most once a day. Unset: kept for ever. */
      keep: journalKeep.optional(),
      /** The team's journal: every run is also written to S3 as it goes, and `history --team`, `show` and `report new` read it. */
      shared: z
        .strictObject({
          s3: z.strictObject({
            bucket: s3Bucket,
            /** Keys go under `<prefix>/runs/YYYY/MM/DD/` (no leading or trailing slash needed). */
            prefix: s3Prefix.default(''),
            /** Default: $AWS_REGION / $AWS_DEFAULT_REGION, else the selected environment's aws.region. */
            region: z.string().min(1).optional(),
            /** Default: $AWS_ENDPOINT_URL (an S3-compatible store, moto in tests). */
            endpoint: url.optional(),
          }),
        })
        .optional(),
    })
    .optional(),
  environments: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, . _ -'), environment),
});

export type ConfigFile = z.output<typeof configSchema>;
/** `journal.shared`, validated (the prefix without slashes at its ends). */
export type SharedJournalConfig = NonNullable<NonNullable<ConfigFile['journal']>['shared']>;
type ParsedEnvironment = z.output<typeof environment>;
type KubernetesSection = NonNullable<ParsedEnvironment['kubernetes']>;
/** An environment as procedures see it: the Kubernetes namespace is always resolved. */
export type EnvironmentConfig = Omit<ParsedEnvironment, 'kubernetes'> & { kubernetes?: KubernetesSection & { namespace: string } };
export type ParsedEnvironmentConfig = ParsedEnvironment;
export type SecretRef = z.output<typeof secretRef>;
export type ValueOrRef = z.output<typeof valueOrRef>;

export function formatIssues(error: z.ZodError): string {
  return describeIssues(error).message;
}

/** The keys an object schema at `path` knows (several when a union allows several shapes). */
export function knownKeys(path: readonly PropertyKey[], schema: z.ZodType = configSchema): string[] {
  type Def = {
    type: string;
    shape?: Record<string, z.ZodType>;
    innerType?: z.ZodType;
    valueType?: z.ZodType;
    element?: z.ZodType;
    options?: z.ZodType[];
    in?: z.ZodType;
  };
  const def = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;
  // Unwraps optional/default/pipe/union down to the schemas that can hold `path`.
  const unwrap = (s: z.ZodType): z.ZodType[] => {
    const d = def(s);
    if (d.innerType) return unwrap(d.innerType);
    if (d.type === 'pipe' && d.in) return unwrap(d.in);
    if (d.type === 'union' && d.options) return d.options.flatMap(unwrap);
    return [s];
  };
  let current = unwrap(schema);
  for (const key of path) {
    current = current.flatMap((s) => {
      const d = def(s);
      if (d.type === 'object' && d.shape && typeof key === 'string' && d.shape[key]) return unwrap(d.shape[key]);
      if (d.type === 'record' && d.valueType) return unwrap(d.valueType);
      if (d.type === 'array' && d.element && typeof key === 'number') return unwrap(d.element);
      return [];
    });
  }
  return [...new Set(current.flatMap((s) => Object.keys(def(s).shape ?? {})))];
}

/**
 * Zod's issues as one line a person can act on: unknown keys first (named, with their path and
 * the nearest known key), then the rest; a required key that a misspelt one stood for is not
 * reported twice.
 */
export function describeIssues(error: z.ZodError): { message: string; hint?: string } {
  const where = (path: readonly PropertyKey[]) => (path.length ? path.map(String).join('.') : '(top level)');
  const parts: string[] = [];
  let hint: string | undefined;
  const explained = new Set<string>();
  for (const issue of error.issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const known = knownKeys(issue.path);
    for (const key of issue.keys) {
      const near = suggestKey(key, known);
      if (near) explained.add(where([...issue.path, near]));
      parts.push(`${where([...issue.path, key])}: unknown key "${key}"${near ? ` (did you mean ${near}?)` : ''}`);
      hint ??= known.length ? `known keys at ${where(issue.path)}: ${known.join(', ')}` : undefined;
    }
  }
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys' || explained.has(where(issue.path))) continue;
    const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message);
    parts.push(`${where(issue.path)}: ${missing ? `missing (${issue.message.replace(/^Invalid input: /, '')})` : issue.message}`);
  }
  const shown = parts.slice(0, 3);
  const more = parts.length > shown.length ? ` (and ${parts.length - shown.length} more)` : '';
  return { message: `${shown.join('; ')}${more}`, hint };
}

/** The closest known key: a typo (a few edits away), a different case, or a prefix. */
function suggestKey(key: string, known: readonly string[]): string | undefined {
  return suggest(key, known, 1)[0];
}
