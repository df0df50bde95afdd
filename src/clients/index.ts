import type { ResolvedEnvironment, ValueOrRef } from '../core/config.js';
import { resolveValue } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import { Redactor } from '../core/redact.js';
import type { HttpClient } from './http.js';
import { fetchHttpClient } from './http.js';
import type { KubeClient, KubeTarget } from './kube.js';
import type { AwsClients, AwsTarget } from './aws.js';
import type { PgConnection } from './postgres.js';
import type { NotifyResult } from './notify.js';
import type { RedisClient, RedisConnectOptions } from './redis.js';
import type { RdsApi } from './rds.js';
import type { Route53Api } from './route53.js';
import type { EcsApi } from './ecs.js';
import type { S3Api } from './s3-objects.js';
import type { WafApi } from './wafv2.js';
import type { ShieldApi } from './shield-drt.js';
import type { ProcessApi } from './process.js';
import type { TlsApi } from './tls.js';
import type { CloudflareApi } from './cloudflare.js';
import type { StatuspageApi } from './statuspage.js';

export type { KubeClient } from './kube.js';
export type { HttpClient } from './http.js';
export type { AwsClients } from './aws.js';
export type { PgConnection } from './postgres.js';
export type { RedisClient, RedisNode } from './redis.js';

declare module '../core/procedure.js' {
  // What the engine's `ctx.clients` and a session's client factories are (see RunClients in core).
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface RunClients extends Clients {}
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface RunClientFactories extends ClientFactories {}
}

/** Lazily created, memoised clients for one run; an SDK is loaded only when a step first needs it. */
export interface Clients {
  kube(): Promise<KubeClient>;
  /** The SDK clients themselves; procedures use the typed APIs below. */
  aws(): Promise<AwsClients>;
  rds(): Promise<RdsApi>;
  route53(): Promise<Route53Api>;
  ecs(): Promise<EcsApi>;
  s3(): Promise<S3Api>;
  /** WAFv2 in `region` (the environment's by default; CLOUDFRONT-scoped ACLs live in us-east-1). */
  waf(region?: string): Promise<WafApi>;
  shield(): Promise<ShieldApi>;
  /** Local programs, run with argument arrays (never a shell string). */
  processes(): Promise<ProcessApi>;
  tls(): Promise<TlsApi>;
  /** The environment's Cloudflare zone, with its `cloudflare.token` resolved (and registered for redaction). */
  cloudflare(): Promise<CloudflareApi>;
  /** The environment's status page, with its `statuspage.token` resolved (and registered for redaction). */
  statuspage(): Promise<StatuspageApi>;
  /** A new PostgreSQL connection (closed with the run); `url` defaults to the environment's primary. */
  postgres(url?: string): Promise<PgConnection>;
  /** The environment's Redis server or cluster (one connection per run). */
  redis(): Promise<RedisClient>;
  http: HttpClient;
  /** Resolves a config value or secret reference (registering the secret for redaction). */
  secret(ref: ValueOrRef, what: string): string;
  /**
   * Test strictness (RUNBOOK_STRICT_SECRETS=1): from now on, reading a secret reference other than
   * `refs` fails, so a procedure that forgets to declare a secret it reads cannot pass its tests.
   */
  restrictSecrets?(refs: ValueOrRef[]): void;
  notify(message: string, signal?: AbortSignal): Promise<NotifyResult[]>;
  closeAll(): Promise<void>;
}

/** Seams for tests: swap any factory for a fake. */
export interface ClientFactories {
  kube(target: KubeTarget, env: Record<string, string | undefined>): Promise<KubeClient>;
  http: HttpClient;
  aws?(target: AwsTarget, env: Record<string, string | undefined>): Promise<AwsClients>;
  postgres?(url: string): Promise<PgConnection>;
  redis?(opts: RedisConnectOptions): Promise<RedisClient>;
}

export const defaultFactories: ClientFactories = {
  async kube(target, env) {
    const { createKubeClient } = await import('./kube-rest.js');
    return createKubeClient(target, env);
  },
  http: fetchHttpClient,
};

function memo<T>(make: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= make());
}

export function makeClients(
  env: ResolvedEnvironment,
  processEnv: Record<string, string | undefined>,
  factories: ClientFactories = defaultFactories,
  redactor: Redactor = new Redactor(),
): Clients {
  const made: Array<{ close(): void | Promise<void> }> = [];
  let allowed: Set<ValueOrRef> | undefined;
  const secret = (ref: ValueOrRef, what: string) => {
    if (allowed && typeof ref !== 'string' && !allowed.has(ref)) {
      throw new UsageError(`${what} was read but not resolved before the run: declare it in the procedure's or the step's \`secrets\``);
    }
    return resolveValue(ref, what, processEnv, redactor);
  };
  const kube = memo(async () => {
    const k = env.config.kubernetes;
    if (!k) throw new UsageError(`environment "${env.name}" has no kubernetes section`);
    const client = await factories.kube({ kubeconfig: k.kubeconfig, context: k.context, namespace: k.namespace }, processEnv);
    made.push(client);
    return client;
  });
  const aws = memo(async () => {
    const a = env.config.aws;
    if (!a) throw new UsageError(`environment "${env.name}" has no aws section`);
    const target = { region: a.region, profile: a.profile, endpoint: a.endpoint };
    const clients = factories.aws ? await factories.aws(target, processEnv) : (await import('./aws.js')).makeAwsClients(target, processEnv);
    made.push(clients);
    return clients;
  });
  const redis = memo(async () => {
    const r = env.config.redis;
    if (!r) throw new UsageError(`environment "${env.name}" has no redis section`);
    const mod = await import('./redis.js');
    const opts = mod.redisOptions(r, `environments.${env.name}.redis`, secret);
    const client = factories.redis ? await factories.redis(opts) : await mod.connectRedis(opts);
    made.push(client);
    return client;
  });
  return {
    kube,
    aws,
    rds: memo(async () => (await import('./rds.js')).RdsApi.create(await aws())),
    route53: memo(async () => (await import('./route53.js')).route53Api(await aws())),
    ecs: memo(async () => (await import('./ecs.js')).ecsApi(await aws())),
    s3: memo(async () => (await import('./s3-objects.js')).s3Api(await aws())),
    waf: async (region) => (await import('./wafv2.js')).wafApi(await (await aws()).wafv2(region)),
    shield: memo(async () => (await import('./shield-drt.js')).shieldApi(await (await aws()).shield())),
    processes: async () => (await import('./process.js')).processApi,
    tls: async () => (await import('./tls.js')).tlsApi,
    cloudflare: memo(async () => {
      const c = env.config.cloudflare;
      if (!c) throw new UsageError(`environment "${env.name}" has no cloudflare section`);
      const token = secret(c.token, `environments.${env.name}.cloudflare.token`);
      return (await import('./cloudflare.js')).cloudflareApi(factories.http, { api: c.api, zoneId: c.zoneId, token });
    }),
    statuspage: memo(async () => {
      const sp = env.config.statuspage;
      if (!sp) throw new UsageError(`environment "${env.name}" has no statuspage section`);
      const token = secret(sp.token, `environments.${env.name}.statuspage.token`);
      return (await import('./statuspage.js')).statuspageApi(factories.http, { url: sp.url, token, timeout: sp.timeout });
    }),
    redis,
    http: factories.http,
    secret,
    restrictSecrets(refs) {
      allowed = new Set(refs);
    },
    async postgres(url?: string) {
      const resolved = url ?? (env.config.postgres ? secret(env.config.postgres.url, `environments.${env.name}.postgres.url`) : undefined);
      if (!resolved) throw new UsageError(`environment "${env.name}" has no postgres section`);
      redactor.addUrl(resolved);
      const conn = factories.postgres ? await factories.postgres(resolved) : await (await import('./postgres.js')).connectPostgres(resolved);
      made.push(conn);
      return conn;
    },
    async notify(message, signal) {
      const n = env.config.notify;
      if (!n) return [];
      const webhookUrl = n.slack ? secret(n.slack.webhook, `environments.${env.name}.notify.slack.webhook`) : undefined;
      const { sendNotification } = await import('./notify.js');
      return sendNotification(n, message, { http: factories.http, webhookUrl, signal });
    },
    async closeAll() {
      for (const c of made.splice(0)) await c.close();
    },
  };
}
