import { bindClient } from './bind.js';
import type { AwsClients } from './aws.js';

/** An ECS service's counts, as `aws ecs describe-services` shows them. */
export interface EcsServiceState {
  region: string;
  cluster: string;
  service: string;
  desired: number;
  running: number;
  pending: number;
  status: string;
}

/** The service, or null when the cluster has no such (active) service. */
export async function describeService(aws: AwsClients, region: string, cluster: string, service: string): Promise<EcsServiceState | null> {
  const client = await aws.ecs(region);
  const { DescribeServicesCommand } = await import('@aws-sdk/client-ecs');
  const r = await client.send(new DescribeServicesCommand({ cluster, services: [service] }));
  const s = (r.services ?? []).find((x) => x.serviceName === service || x.serviceArn?.endsWith(`/${service}`));
  if (!s || s.status === 'INACTIVE') return null;
  return { region, cluster, service, desired: s.desiredCount ?? 0, running: s.runningCount ?? 0, pending: s.pendingCount ?? 0, status: s.status ?? 'UNKNOWN' };
}

export async function setDesiredCount(aws: AwsClients, region: string, cluster: string, service: string, desiredCount: number): Promise<number> {
  const client = await aws.ecs(region);
  const { UpdateServiceCommand } = await import('@aws-sdk/client-ecs');
  const r = await client.send(new UpdateServiceCommand({ cluster, service, desiredCount }));
  return r.service?.desiredCount ?? desiredCount;
}

/** The ECS calls of the procedures, bound to the run's AWS clients (`ctx.clients.ecs()`). */
export function ecsApi(aws: AwsClients) {
  return bindClient(aws, { describeService, setDesiredCount });
}
export type EcsApi = ReturnType<typeof ecsApi>;
