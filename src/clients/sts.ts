import type { AwsTarget } from './aws.js';
import { awsErrorMessage, envCredentials } from './aws.js';

/** Who the AWS credentials are (STS GetCallerIdentity: needs no permission, so it tests only the credentials). */
export interface CallerIdentity {
  account: string;
  arn: string;
  userId: string;
}

/**
 * The identity the environment's AWS settings sign in as, through the same credential sources as the
 * procedures' clients (the run's AWS_* variables, else the SDK's default chain: profiles, SSO, roles).
 */
export async function callerIdentity(target: AwsTarget, env: Record<string, string | undefined>, signal?: AbortSignal): Promise<CallerIdentity> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  if (target.profile && !env.AWS_PROFILE) process.env.AWS_PROFILE = target.profile;
  const { STSClient, GetCallerIdentityCommand } = await import('@aws-sdk/client-sts');
  const endpoint = target.endpoint ?? env.AWS_ENDPOINT_URL;
  const client = new STSClient({
    region: target.region,
    ...(endpoint ? { endpoint } : {}),
    ...envCredentials(env),
    maxAttempts: 2,
  });
  try {
    const out = await client.send(new GetCallerIdentityCommand({}), { abortSignal: signal });
    return { account: out.Account ?? '?', arn: out.Arn ?? '?', userId: out.UserId ?? '?' };
  } catch (err) {
    throw new Error(awsErrorMessage(err), { cause: err });
  } finally {
    client.destroy();
  }
}
