import type { RDSClient } from '@aws-sdk/client-rds';
import type { ECSClient } from '@aws-sdk/client-ecs';
import type { Route53Client } from '@aws-sdk/client-route-53';
import type { S3Client } from '@aws-sdk/client-s3';
import type { WAFV2Client } from '@aws-sdk/client-wafv2';
import type { ShieldClient } from '@aws-sdk/client-shield';

export interface AwsTarget {
  region: string;
  profile?: string;
  endpoint?: string;
}

/** The AWS SDK v3 clients the procedures use; each SDK package is imported only when first asked for. */
export interface AwsClients {
  rds(region?: string): Promise<RDSClient>;
  ecs(region?: string): Promise<ECSClient>;
  route53(): Promise<Route53Client>;
  s3(region?: string): Promise<S3Client>;
  wafv2(region?: string): Promise<WAFV2Client>;
  shield(): Promise<ShieldClient>;
  close(): void;
}

type Closable = { destroy(): void };

/**
 * Static credentials from the run's environment (process.env in production, injected in tests), which
 * take precedence over the rest of the SDK's default chain; none: the chain decides (profiles, SSO, roles).
 */
export function envCredentials(env: Record<string, string | undefined>): {
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
} {
  if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) return {};
  return {
    credentials: {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    },
  };
}

/**
 * Credentials come from the SDK's default provider chain (env, profiles, SSO, instance roles);
 * `endpoint` (or AWS_ENDPOINT_URL, which the SDK reads itself) points at moto in tests.
 */
export function makeAwsClients(target: AwsTarget, env: Record<string, string | undefined>): AwsClients {
  // The SDK versions pinned in the lockfile support Node 20; its warning about *future* versions
  // needing Node 22 would only be noise on an operator's stderr. An explicit setting wins.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const made = new Map<string, Promise<Closable>>();
  const base = (region?: string) => ({
    region: region ?? target.region,
    ...(target.endpoint || env.AWS_ENDPOINT_URL ? { endpoint: target.endpoint ?? env.AWS_ENDPOINT_URL } : {}),
    ...(target.endpoint || env.AWS_ENDPOINT_URL ? { forcePathStyle: true } : {}),
    ...envCredentials(env),
    maxAttempts: 3,
  });
  async function get<T extends Closable>(key: string, make: () => Promise<T>): Promise<T> {
    if (!made.has(key)) made.set(key, make());
    return made.get(key) as Promise<T>;
  }
  if (target.profile && !env.AWS_PROFILE) process.env.AWS_PROFILE = target.profile;
  return {
    rds: (region) => get(`rds:${region ?? ''}`, async () => new (await import('@aws-sdk/client-rds')).RDSClient(base(region))),
    ecs: (region) => get(`ecs:${region ?? ''}`, async () => new (await import('@aws-sdk/client-ecs')).ECSClient(base(region))),
    route53: () => get('route53', async () => new (await import('@aws-sdk/client-route-53')).Route53Client(base('us-east-1'))),
    s3: (region) => get(`s3:${region ?? ''}`, async () => new (await import('@aws-sdk/client-s3')).S3Client(base(region))),
    wafv2: (region) => get(`wafv2:${region ?? ''}`, async () => new (await import('@aws-sdk/client-wafv2')).WAFV2Client(base(region))),
    shield: () => get('shield', async () => new (await import('@aws-sdk/client-shield')).ShieldClient(base('us-east-1'))),
    close() {
      for (const p of made.values())
        void p.then(
          (c) => c.destroy(),
          () => undefined,
        );
      made.clear();
    },
  };
}

/** One readable line from an AWS SDK error: service code and message, never a stack. */
export function awsErrorMessage(err: unknown): string {
  const e = err as { name?: string; message?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const code = e?.Code ?? e?.name ?? 'Error';
  const status = e?.$metadata?.httpStatusCode ? ` (${e.$metadata.httpStatusCode})` : '';
  return `AWS ${code}${status}: ${e?.message ?? String(err)}`;
}
