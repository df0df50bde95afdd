import type { AwsClients } from '../../../src/clients/aws.js';
import type { PgConnection } from '../../../src/clients/postgres.js';

/** An in-memory RDS: `send(command)` dispatches on the SDK command's class name; a reboot passes through "rebooting". */
export class FakeRds {
  calls: string[] = [];
  status = new Map<string, string>([['prod-db', 'available']]);
  failReboot = false;

  async send(cmd: { constructor: { name: string }; input: Record<string, string> }) {
    const name = cmd.constructor.name;
    this.calls.push(name);
    const id = cmd.input.DBInstanceIdentifier;
    const notFound = () => Object.assign(new Error(`DBInstance ${id} not found.`), { name: 'DBInstanceNotFoundFault' });
    if (name === 'DescribeDBInstancesCommand') {
      if (!this.status.has(id)) throw notFound();
      return { DBInstances: [{ DBInstanceIdentifier: id, DBInstanceStatus: this.status.get(id), Endpoint: { Address: `${id}.fake`, Port: 5432 } }] };
    }
    if (name === 'RebootDBInstanceCommand') {
      if (this.failReboot || !this.status.has(id)) throw notFound();
      this.status.set(id, 'rebooting');
      setTimeout(() => this.status.set(id, 'available'), 30);
      return { DBInstance: { DBInstanceIdentifier: id, DBInstanceStatus: 'rebooting' } };
    }
    throw new Error(`FakeRds: ${name} not implemented`);
  }

  destroy() {}

  /** The AwsClients the factories hand out. */
  clients(): AwsClients {
    return { rds: async () => this, close() {} } as unknown as AwsClients;
  }
}

/** A PostgreSQL that answers SELECT 1 while `up()` says so, else refuses the connection. */
export function fakePostgres(up: () => boolean = () => true): () => Promise<PgConnection> {
  return async () => {
    if (!up()) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    return { target: 'fake:5432/app', query: async () => [{ ok: 1 }] as never, close: async () => undefined };
  };
}

/** The environment the db restart fakes stand for: a deployment, an RDS instance, its PostgreSQL, short waits. */
export function fakeDbEnvironment(): Record<string, unknown> {
  return {
    kubernetes: { namespace: 'production', deployment: 'app' },
    rollout: { timeout: '2s' },
    aws: { region: 'us-east-1' },
    rds: { instance: 'prod-db', pollInterval: '10ms', waitTimeout: '2s', connectTimeout: '300ms' },
    postgres: { url: 'postgres://app@db.internal:5432/app' },
  };
}
