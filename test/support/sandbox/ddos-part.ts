/**
 * The DDoS slice of the sandbox: a CLOUDFRONT web ACL in the shared moto holding one existing rule
 * (so a merge that replaced everything would show), emergency rules in the config, and a local
 * Cloudflare API fake whose zone security level starts at "medium".
 */
import { startHttpService, type HttpService, type MotoService } from '../services/index.js';
import { sandboxMoto } from './shared-moto.js';
import type { SandboxContext, SandboxPart } from './types.js';

export const DDOS = {
  aclName: 'edge-acl',
  zoneId: 'zone123',
  token: 'cf-test-token-0123456789',
  replicas: 5,
  baseline: {
    Name: 'baseline-block-bad-ips',
    Priority: 0,
    Statement: {
      ByteMatchStatement: {
        SearchString: 'badbot',
        FieldToMatch: { UriPath: {} },
        TextTransformations: [{ Priority: 0, Type: 'NONE' }],
        PositionalConstraint: 'CONTAINS',
      },
    },
    Action: { Block: {} },
    VisibilityConfig: { SampledRequestsEnabled: true, CloudWatchMetricsEnabled: true, MetricName: 'baseline' },
  },
  emergency: [
    {
      Name: 'emergency-rate-limit',
      Priority: 1,
      Statement: { RateBasedStatement: { Limit: 100, AggregateKeyType: 'IP' } },
      Action: { Block: {} },
      VisibilityConfig: { SampledRequestsEnabled: true, CloudWatchMetricsEnabled: true, MetricName: 'emergency-rate-limit' },
    },
  ],
} as const;

function awsConfig(moto: MotoService) {
  return { region: 'us-east-1', endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
}

export async function createWebAcl(moto: MotoService): Promise<{ id: string }> {
  const m = await import('@aws-sdk/client-wafv2');
  const c = new m.WAFV2Client(awsConfig(moto));
  try {
    const r = await c.send(
      new m.CreateWebACLCommand({
        Name: DDOS.aclName,
        Scope: 'CLOUDFRONT',
        DefaultAction: { Allow: {} },
        VisibilityConfig: { SampledRequestsEnabled: true, CloudWatchMetricsEnabled: true, MetricName: 'edge-acl' },
        Rules: [DDOS.baseline as never],
      }),
    );
    return { id: r.Summary?.Id ?? '' };
  } finally {
    c.destroy();
  }
}

/** The ACL's rules as compact JSON (names, priorities, statements). */
export async function aclRules(moto: MotoService, id: string): Promise<Array<{ Name?: string; Priority?: number; Statement?: unknown }>> {
  const m = await import('@aws-sdk/client-wafv2');
  const c = new m.WAFV2Client(awsConfig(moto));
  try {
    const r = await c.send(new m.GetWebACLCommand({ Name: DDOS.aclName, Scope: 'CLOUDFRONT', Id: id }));
    return (r.WebACL?.Rules ?? []).map((x) => ({ Name: x.Name, Priority: x.Priority, Statement: x.Statement }));
  } finally {
    c.destroy();
  }
}

/** A Cloudflare API fake: GET/PATCH zones/{zone}/settings/security_level with a Bearer token. */
export interface CloudflareFake {
  service: HttpService;
  level: string;
  /** Answer PATCH with an error (fault injection). */
  failPatch: boolean;
}

export async function startCloudflareFake(zoneId: string, token: string, level = 'medium'): Promise<CloudflareFake> {
  const fake = { level, failPatch: false } as CloudflareFake;
  const path = `/client/v4/zones/${zoneId}/settings/security_level`;
  fake.service = await startHttpService((req) => {
    if (req.headers.authorization !== `Bearer ${token}`)
      return { status: 403, body: { success: false, errors: [{ code: 9109, message: 'Invalid access token' }] } };
    if (req.pathname !== path) return { status: 404, body: { success: false, errors: [{ code: 7003, message: 'Could not route' }] } };
    if (req.method === 'PATCH') {
      if (fake.failPatch) return { status: 500, body: { success: false, errors: [{ code: 1000, message: 'injected failure' }] } };
      const v = (req.json as { value?: string } | undefined)?.value;
      if (!v || !['off', 'essentially_off', 'low', 'medium', 'high', 'under_attack'].includes(v))
        return { status: 400, body: { success: false, errors: [{ code: 1007, message: 'Invalid value' }] } };
      fake.level = v;
    } else if (req.method !== 'GET') return { status: 405, body: { success: false } };
    return { status: 200, body: { success: true, errors: [], result: { id: 'security_level', value: fake.level, editable: true } } };
  });
  return fake;
}

/** The part, with handles for tests (fault injection, direct reads). */
export interface DdosPart extends SandboxPart {
  cloudflare: CloudflareFake;
  moto: MotoService;
  aclId: string;
}

export async function startDdosPart(ctx: SandboxContext): Promise<DdosPart> {
  const shared = await sandboxMoto(ctx);
  const moto = shared.moto;
  let cf: CloudflareFake | undefined;
  try {
    const { id } = await createWebAcl(moto);
    cf = await startCloudflareFake(DDOS.zoneId, DDOS.token);
    const fake = cf;
    return {
      name: 'ddos',
      cloudflare: fake,
      moto,
      aclId: id,
      environment: {
        aws: { region: 'us-east-1', endpoint: moto.endpoint },
        // Shield's DRT calls are not emulated by moto 5, so the sandbox leaves ddos.shield out.
        ddos: { waf: { scope: 'CLOUDFRONT', name: DDOS.aclName, id, rules: DDOS.emergency }, rateLimit: { requests: 10, window: 60 }, replicas: DDOS.replicas },
        cloudflare: { api: `${fake.service.url}/client/v4`, zoneId: DDOS.zoneId, token: { env: 'CLOUDFLARE_API_TOKEN' } },
      },
      env: { ...moto.env(), CLOUDFLARE_API_TOKEN: DDOS.token },
      async fingerprint() {
        return JSON.stringify({ rules: await aclRules(moto, id), cloudflare: fake.level });
      },
      async stop() {
        await fake.service.stop().catch(() => undefined);
        await shared.release();
      },
    };
  } catch (err) {
    await cf?.service.stop().catch(() => undefined);
    await shared.release();
    throw err;
  }
}
