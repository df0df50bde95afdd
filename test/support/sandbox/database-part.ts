import {
  CreateDBInstanceCommand,
  CreateDBSnapshotCommand,
  DeleteDBInstanceCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import pg from 'pg';
import { startHttpService, startPostgres, type HttpService, type MotoService, type PostgresService } from '../services/index.js';
import type { SandboxContext, SandboxPart } from './types.js';
import { sandboxMoto } from './shared-moto.js';

/** The RDS instance and snapshots the sandbox seeds in moto. */
export const SANDBOX_RDS_INSTANCE = 'prod-db';
export const SANDBOX_SNAPSHOTS = ['prod-db-snap-1', 'prod-db-snap-2'];
/** Rows in `users` on the primary, and in the database standing in for the restored instance. */
export const PRIMARY_USERS = 25;
export const RECOVERED_USERS = 20;

/** The database part, with handles tests use to inject faults (stop PostgreSQL, delete the RDS instance, hook the webhook). */
export interface DatabasePart extends SandboxPart {
  pg: PostgresService;
  moto: MotoService;
  /** The Slack-compatible incoming webhook: every message is in `requests`; `onMessage` lets a test react to one. */
  slack: HttpService & { onMessage?: (text: string) => void | Promise<void> };
  rds: RDSClient;
  /** Re-creates `prod-db` (and its snapshots) after a test deleted it. */
  reseedRds(): Promise<void>;
  /** A plain pg client on the primary (or a named database), closed by the caller. */
  connect(database?: string, applicationName?: string): Promise<pg.Client>;
}

async function seedRds(rds: RDSClient): Promise<void> {
  const have = await rds.send(new DescribeDBInstancesCommand({})).then((o) => (o.DBInstances ?? []).map((i) => i.DBInstanceIdentifier));
  if (!have.includes(SANDBOX_RDS_INSTANCE)) {
    await rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: SANDBOX_RDS_INSTANCE,
        Engine: 'postgres',
        EngineVersion: '15.5',
        DBInstanceClass: 'db.t3.micro',
        AllocatedStorage: 20,
        MasterUsername: 'postgres',
        MasterUserPassword: 'sandbox-master-pw',
      }),
    );
  }
  const snaps = await rds.send(new DescribeDBSnapshotsCommand({})).then((o) => (o.DBSnapshots ?? []).map((s) => s.DBSnapshotIdentifier));
  for (const id of SANDBOX_SNAPSHOTS) {
    if (!snaps.includes(id)) await rds.send(new CreateDBSnapshotCommand({ DBInstanceIdentifier: SANDBOX_RDS_INSTANCE, DBSnapshotIdentifier: id }));
  }
}

/**
 * PostgreSQL primary (pg_stat_statements) + streaming replica, moto with the RDS instance `prod-db`
 * and two snapshots, and a local Slack webhook. moto's instances have no database behind them, so
 * the config maps them to the local PostgreSQL: `rds` uses postgres.url (the primary), and the
 * restored instance uses RECOVERED_DATABASE_URL (a `recovered` database on the same server).
 */
export async function startDatabasePart(ctx: SandboxContext): Promise<DatabasePart> {
  const [pgSvc, shared] = await Promise.all([startPostgres({ replica: true }), sandboxMoto(ctx)]);
  const moto = shared.moto;
  const messages: string[] = [];
  const slack = (await startHttpService(async (req) => {
    const text = String((req.json as { text?: string } | undefined)?.text ?? '');
    messages.push(text);
    await part.slack.onMessage?.(text);
    return { status: 200, body: 'ok' };
  })) as DatabasePart['slack'];
  const rds = new RDSClient({
    region: moto.region,
    endpoint: moto.endpoint,
    credentials: { accessKeyId: moto.accessKeyId, secretAccessKey: moto.secretAccessKey },
  });
  const recoveredUrl = pgSvc.url.replace(/\/postgres$/, '/recovered');
  const connect = async (database = 'postgres', applicationName = 'sandbox') => {
    const c = new pg.Client({ host: pgSvc.host, port: pgSvc.port, user: pgSvc.user, password: pgSvc.password, database, application_name: applicationName });
    await c.connect();
    return c;
  };

  try {
    const admin = await connect();
    try {
      await admin.query(`CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, email text NOT NULL)`);
      await admin.query(`INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, ${PRIMARY_USERS}) g`);
      await admin.query('CREATE DATABASE recovered');
    } finally {
      await admin.end();
    }
    const rec = await connect('recovered');
    try {
      await rec.query(`CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL)`);
      await rec.query(`INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, ${RECOVERED_USERS}) g`);
    } finally {
      await rec.end();
    }
    await seedRds(rds);
  } catch (err) {
    await Promise.all([pgSvc.stop(), shared.release(), slack.stop()]);
    throw err;
  }

  const part: DatabasePart = {
    name: 'database',
    pg: pgSvc,
    moto,
    slack,
    rds,
    connect,
    reseedRds: () => seedRds(rds),
    environment: {
      aws: { region: moto.region, endpoint: moto.endpoint },
      rds: {
        instance: SANDBOX_RDS_INSTANCE,
        waitTimeout: '30s',
        pollInterval: '100ms',
        connectTimeout: '10s',
        recovery: { url: { env: 'RECOVERED_DATABASE_URL' }, verifyTable: 'users' },
      },
      postgres: { url: { env: 'DATABASE_URL' }, replicas: [{ name: 'replica', url: { env: 'REPLICA_DATABASE_URL' } }] },
      notify: { slack: { webhook: { env: 'SLACK_WEBHOOK_URL' }, channel: '#ops' } },
    },
    env: {
      DATABASE_URL: pgSvc.url,
      REPLICA_DATABASE_URL: pgSvc.replicaUrl!,
      RECOVERED_DATABASE_URL: recoveredUrl,
      SLACK_WEBHOOK_URL: `${slack.url}/services/T000/B000/sandbox`,
      ...moto.env(),
    },
    async fingerprint() {
      const c = await connect('postgres', 'sandbox-fingerprint');
      let db: unknown;
      try {
        const settings = await c.query(`SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno`);
        // Sessions that tests hold on purpose are named fixture-*; a dry run must not end any of them.
        const fixtures = await c.query(`SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE 'fixture%' ORDER BY pid`);
        const users = await c.query(`SELECT count(*)::int AS n FROM users`);
        db = { autoConf: settings.rows, fixtures: fixtures.rows, users: users.rows[0].n };
      } finally {
        await c.end();
      }
      const instances = await rds
        .send(new DescribeDBInstancesCommand({}))
        .then((o) => (o.DBInstances ?? []).map((i) => `${i.DBInstanceIdentifier}:${i.DBInstanceStatus}`).sort());
      const snapshots = await rds.send(new DescribeDBSnapshotsCommand({})).then((o) => (o.DBSnapshots ?? []).map((s) => s.DBSnapshotIdentifier).sort());
      // Notifications are messages to people, not state of the system: they are not compared.
      return JSON.stringify({ db, instances, snapshots });
    },
    async stop() {
      rds.destroy();
      await Promise.all([pgSvc.stop(), shared.release(), slack.stop()]);
    },
  };
  return part;
}

/** For tests: delete an RDS instance in moto (to make the reboot fail for real). */
export async function deleteRdsInstance(rds: RDSClient, id: string): Promise<void> {
  await rds.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: id, SkipFinalSnapshot: true }));
}
