import type { AwsClients } from './aws.js';
import { awsErrorMessage } from './aws.js';
import { StepError } from '../core/errors.js';
import { formatDuration } from '../core/duration.js';
import { sleep } from '../core/sleep.js';
import { byText } from '../core/format.js';

/** What the procedures need to know about one DB instance. */
export interface RdsInstance {
  id: string;
  status: string;
  engine?: string;
  instanceClass?: string;
  endpoint?: { address: string; port: number };
  tags: Record<string, string>;
}

/** One DB snapshot, as listed for the operator. */
export interface RdsSnapshot {
  id: string;
  instance?: string;
  createdAt?: string;
  status?: string;
  type?: string;
  engine?: string;
  allocatedGb?: number;
}

/** Statuses after which waiting for `available` is pointless. */
const TERMINAL = new Set([
  'failed',
  'incompatible-restore',
  'incompatible-parameters',
  'incompatible-network',
  'incompatible-option-group',
  'inaccessible-encryption-credentials',
  'deleting',
  'stopped',
  'storage-full',
]);

/** Tag put on an instance restored by runbook, so a re-run (or resume) recognises its own restore. */
export const RESTORED_FROM_TAG = 'runbook/restored-from-snapshot';

function isNotFound(err: unknown, what: 'instance' | 'snapshot'): boolean {
  const e = err as { name?: string; Code?: string };
  const code = `${e?.name ?? ''} ${e?.Code ?? ''}`;
  return what === 'instance' ? /DBInstanceNotFound/.test(code) : /DBSnapshotNotFound/.test(code);
}

/**
 * The SDK leaves its abort listener behind after a call, and a later abort of a long-lived signal then
 * surfaces as an unhandled rejection; each call gets its own signal, linked only while it is in flight.
 */
function scoped<T>(signal: AbortSignal | undefined, call: (s: AbortSignal | undefined) => Promise<T>): Promise<T> {
  if (!signal) return call(undefined);
  const ctl = new AbortController();
  const forward = () => ctl.abort(signal.reason);
  if (signal.aborted) forward();
  else signal.addEventListener('abort', forward, { once: true });
  return call(ctl.signal).finally(() => signal.removeEventListener('abort', forward));
}

/** The RDS calls of the database procedures, over the SDK client (loaded on first use). */
export class RdsApi {
  private constructor(
    private readonly sdk: typeof import('@aws-sdk/client-rds'),
    private readonly client: import('@aws-sdk/client-rds').RDSClient,
  ) {}

  static async create(aws: AwsClients): Promise<RdsApi> {
    const [sdk, client] = await Promise.all([import('@aws-sdk/client-rds'), aws.rds()]);
    return new RdsApi(sdk, client);
  }

  private send<T>(command: object, signal?: AbortSignal): Promise<T> {
    const send = this.client.send as unknown as (c: object, o: { abortSignal?: AbortSignal }) => Promise<T>;
    return scoped(signal, (s) => send.call(this.client, command, { abortSignal: s }));
  }

  private toInstance(i: import('@aws-sdk/client-rds').DBInstance): RdsInstance {
    return {
      id: i.DBInstanceIdentifier ?? '',
      status: i.DBInstanceStatus ?? 'unknown',
      engine: i.Engine,
      instanceClass: i.DBInstanceClass,
      endpoint: i.Endpoint?.Address ? { address: i.Endpoint.Address, port: i.Endpoint.Port ?? 5432 } : undefined,
      tags: Object.fromEntries((i.TagList ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
    };
  }

  /** The instance, or null when it does not exist. */
  async describeInstance(id: string, signal?: AbortSignal): Promise<RdsInstance | null> {
    try {
      const out = await this.send<import('@aws-sdk/client-rds').DescribeDBInstancesCommandOutput>(
        new this.sdk.DescribeDBInstancesCommand({ DBInstanceIdentifier: id }),
        signal,
      );
      const i = out.DBInstances?.[0];
      return i ? this.toInstance(i) : null;
    } catch (err) {
      if (isNotFound(err, 'instance')) return null;
      throw new StepError(`cannot describe RDS instance ${id}: ${awsErrorMessage(err)}`, 'check the AWS credentials, region and endpoint of this environment');
    }
  }

  /** Like describeInstance, but a missing instance is an error naming it. */
  async requireInstance(id: string, signal?: AbortSignal): Promise<RdsInstance> {
    const i = await this.describeInstance(id, signal);
    if (!i)
      throw new StepError(
        `RDS instance ${id} not found`,
        `aws rds describe-db-instances --query 'DBInstances[].DBInstanceIdentifier' lists the instances; fix rds.instance in the config`,
      );
    return i;
  }

  async reboot(id: string, signal?: AbortSignal): Promise<RdsInstance> {
    try {
      const out = await this.send<import('@aws-sdk/client-rds').RebootDBInstanceCommandOutput>(
        new this.sdk.RebootDBInstanceCommand({ DBInstanceIdentifier: id }),
        signal,
      );
      return this.toInstance(out.DBInstance ?? { DBInstanceIdentifier: id });
    } catch (err) {
      if (isNotFound(err, 'instance')) throw new StepError(`RDS reboot failed: instance ${id} not found`, 'aws rds describe-db-instances lists the instances');
      throw new StepError(`RDS reboot of ${id} failed: ${awsErrorMessage(err)}`);
    }
  }

  /** Snapshots of an instance, newest first; or the one snapshot with this id (null when unknown). */
  async listSnapshots(instance: string, signal?: AbortSignal): Promise<RdsSnapshot[]> {
    const out: RdsSnapshot[] = [];
    let marker: string | undefined;
    try {
      do {
        const page = await this.send<import('@aws-sdk/client-rds').DescribeDBSnapshotsCommandOutput>(
          new this.sdk.DescribeDBSnapshotsCommand({ DBInstanceIdentifier: instance, Marker: marker }),
          signal,
        );
        for (const s of page.DBSnapshots ?? []) out.push(this.toSnapshot(s));
        marker = page.Marker;
      } while (marker);
    } catch (err) {
      throw new StepError(`cannot list snapshots of ${instance}: ${awsErrorMessage(err)}`);
    }
    return out.sort((a, b) => byText(b.createdAt ?? '', a.createdAt ?? ''));
  }

  async findSnapshot(id: string, signal?: AbortSignal): Promise<RdsSnapshot | null> {
    try {
      const page = await this.send<import('@aws-sdk/client-rds').DescribeDBSnapshotsCommandOutput>(
        new this.sdk.DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: id }),
        signal,
      );
      const s = page.DBSnapshots?.[0];
      return s ? this.toSnapshot(s) : null;
    } catch (err) {
      if (isNotFound(err, 'snapshot')) return null;
      throw new StepError(`cannot describe snapshot ${id}: ${awsErrorMessage(err)}`);
    }
  }

  private toSnapshot(s: import('@aws-sdk/client-rds').DBSnapshot): RdsSnapshot {
    return {
      id: s.DBSnapshotIdentifier ?? '',
      instance: s.DBInstanceIdentifier,
      createdAt: s.SnapshotCreateTime ? new Date(s.SnapshotCreateTime).toISOString() : undefined,
      status: s.Status,
      type: s.SnapshotType,
      engine: s.Engine,
      allocatedGb: s.AllocatedStorage,
    };
  }

  async restoreFromSnapshot(snapshot: string, target: string, signal?: AbortSignal): Promise<RdsInstance> {
    try {
      const out = await this.send<import('@aws-sdk/client-rds').RestoreDBInstanceFromDBSnapshotCommandOutput>(
        new this.sdk.RestoreDBInstanceFromDBSnapshotCommand({
          DBInstanceIdentifier: target,
          DBSnapshotIdentifier: snapshot,
          Tags: [{ Key: RESTORED_FROM_TAG, Value: snapshot }],
        }),
        signal,
      );
      return this.toInstance(out.DBInstance ?? { DBInstanceIdentifier: target });
    } catch (err) {
      throw new StepError(`restore of ${snapshot} into ${target} failed: ${awsErrorMessage(err)}`);
    }
  }

  /**
   * Polls DescribeDBInstances until the instance reports `available`. A reboot may show `available`
   * at once (an emulator, or the moment before RDS switches to `rebooting`); the SELECT 1 step that
   * follows is what proves the database is back.
   */
  async waitAvailable(
    id: string,
    opts: { timeoutMs: number; intervalMs: number; signal: AbortSignal; onStatus?(status: string): void },
  ): Promise<{ status: string; seen: string[]; waitedMs: number; endpoint?: RdsInstance['endpoint'] }> {
    const t0 = performance.now();
    const seen: string[] = [];
    for (;;) {
      const i = await this.requireInstance(id, opts.signal);
      if (seen[seen.length - 1] !== i.status) {
        seen.push(i.status);
        opts.onStatus?.(i.status);
      }
      if (i.status === 'available') return { status: i.status, seen, waitedMs: Math.round(performance.now() - t0), endpoint: i.endpoint };
      if (TERMINAL.has(i.status))
        throw new StepError(
          `RDS instance ${id} is "${i.status}", it will not become available on its own`,
          `aws rds describe-events --source-identifier ${id} --source-type db-instance`,
        );
      const left = opts.timeoutMs - (performance.now() - t0);
      if (left <= 0) {
        throw new StepError(
          `RDS instance ${id} not available after ${formatDuration(opts.timeoutMs)} (status: ${i.status})`,
          `aws rds wait db-instance-available --db-instance-identifier ${id}; raise rds.waitTimeout if reboots are slow`,
        );
      }
      await sleep(Math.min(opts.intervalMs, left), opts.signal);
    }
  }
}
