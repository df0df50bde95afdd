import { bindClient } from './bind.js';
import type { AwsClients } from './aws.js';

/** A record set as Route 53 speaks it (the fields `dr` reads and writes). */
export interface RecordSet {
  Name: string;
  Type: string;
  SetIdentifier?: string;
  TTL?: number;
  ResourceRecords?: Array<{ Value: string }>;
  AliasTarget?: { HostedZoneId: string; DNSName: string; EvaluateTargetHealth: boolean };
  Weight?: number;
  Region?: string;
  Failover?: string;
  HealthCheckId?: string;
}

/** One change of a batch. */
export interface RecordChange {
  Action: 'CREATE' | 'DELETE' | 'UPSERT';
  ResourceRecordSet: RecordSet;
}

export interface ChangeBatch {
  Comment?: string;
  Changes: RecordChange[];
}

/** "example.com" and "Example.COM." are the same name to Route 53. */
export function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n : `${n}.`;
}

export function bareZoneId(id: string): string {
  return id.replace(/^\/hostedzone\//, '');
}

export async function getHostedZone(aws: AwsClients, zoneId: string): Promise<{ id: string; name: string; records: number }> {
  const client = await aws.route53();
  const { GetHostedZoneCommand } = await import('@aws-sdk/client-route-53');
  const r = await client.send(new GetHostedZoneCommand({ Id: bareZoneId(zoneId) }));
  return { id: bareZoneId(r.HostedZone?.Id ?? zoneId), name: r.HostedZone?.Name ?? '', records: r.HostedZone?.ResourceRecordSetCount ?? 0 };
}

/** The record set with exactly this name, type (and set identifier), or null. */
export async function findRecordSet(aws: AwsClients, zoneId: string, name: string, type: string, setIdentifier?: string): Promise<RecordSet | null> {
  const client = await aws.route53();
  const { ListResourceRecordSetsCommand } = await import('@aws-sdk/client-route-53');
  const want = normalizeName(name);
  let startName: string | undefined = want;
  let startType: string | undefined = type;
  let startId: string | undefined = setIdentifier;
  for (let page = 0; page < 20; page++) {
    const r: import('@aws-sdk/client-route-53').ListResourceRecordSetsCommandOutput = await client.send(
      new ListResourceRecordSetsCommand({
        HostedZoneId: bareZoneId(zoneId),
        StartRecordName: startName,
        StartRecordType: startType as never,
        StartRecordIdentifier: startId,
        MaxItems: 100,
      }),
    );
    for (const rr of r.ResourceRecordSets ?? []) {
      const n = normalizeName(rr.Name ?? '');
      if (n === want && rr.Type === type && (rr.SetIdentifier ?? undefined) === (setIdentifier ?? undefined)) return rr as RecordSet;
      // Listing is sorted by name then type: once past our record, it does not exist.
      if (n !== want) return null;
    }
    if (!r.IsTruncated) return null;
    startName = r.NextRecordName;
    startType = r.NextRecordType;
    startId = r.NextRecordIdentifier;
  }
  return null;
}

export async function changeRecordSets(aws: AwsClients, zoneId: string, batch: ChangeBatch): Promise<{ changeId: string; status: string }> {
  const client = await aws.route53();
  const { ChangeResourceRecordSetsCommand } = await import('@aws-sdk/client-route-53');
  const r = await client.send(new ChangeResourceRecordSetsCommand({ HostedZoneId: bareZoneId(zoneId), ChangeBatch: batch as never }));
  return { changeId: (r.ChangeInfo?.Id ?? '').replace(/^\/change\//, ''), status: r.ChangeInfo?.Status ?? 'PENDING' };
}

export async function getChangeStatus(aws: AwsClients, changeId: string): Promise<string> {
  const client = await aws.route53();
  const { GetChangeCommand } = await import('@aws-sdk/client-route-53');
  const r = await client.send(new GetChangeCommand({ Id: changeId }));
  return r.ChangeInfo?.Status ?? 'PENDING';
}

/** A record's value for people: "1.2.3.4, 5.6.7.8 (TTL 60)" or "alias dr-lb.example.com.". */
export function describeRecord(rr: RecordSet | null): string {
  if (!rr) return '(absent)';
  if (rr.AliasTarget) return `alias ${rr.AliasTarget.DNSName}`;
  const values = (rr.ResourceRecords ?? []).map((v) => v.Value).join(', ');
  return `${values}${rr.TTL !== undefined ? ` (TTL ${rr.TTL})` : ''}`;
}

/** Equal for Route 53's purposes: same values, TTL, alias target and routing fields. */
export function sameRecord(a: RecordSet | null, b: RecordSet | null): boolean {
  if (!a || !b) return a === b;
  const key = (r: RecordSet) =>
    JSON.stringify([
      normalizeName(r.Name),
      r.Type,
      r.SetIdentifier ?? null,
      r.TTL ?? null,
      (r.ResourceRecords ?? []).map((v) => v.Value).sort(),
      r.AliasTarget ? [normalizeName(r.AliasTarget.DNSName), r.AliasTarget.HostedZoneId, r.AliasTarget.EvaluateTargetHealth] : null,
      r.Weight ?? null,
      r.Region ?? null,
      r.Failover ?? null,
      r.HealthCheckId ?? null,
    ]);
  return key(a) === key(b);
}

/** The Route 53 calls of the procedures, bound to the run's AWS clients (`ctx.clients.route53()`). */
export function route53Api(aws: AwsClients) {
  return bindClient(aws, { getHostedZone, findRecordSet, changeRecordSets, getChangeStatus });
}
export type Route53Api = ReturnType<typeof route53Api>;
