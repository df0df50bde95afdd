/**
 * The DR and maintenance slice of the sandbox (issue 5): moto with a Route 53 zone holding the
 * record to fail over, ECS services in a primary (us-east-1) and a DR (us-west-2) region, an S3
 * bucket holding a real pg_dump custom-format dump and a log archive bucket; a DR health endpoint;
 * a TLS server with a 90-day test certificate; a log directory with old logs; fake certbot/nginx.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import {
  makeTestCertificates,
  pgBin,
  pgSuperuserEnv,
  startHttpService,
  startPostgres,
  startTlsServer,
  type MotoService,
  type PostgresService,
} from '../services/index.js';
import { sandboxMoto } from './shared-moto.js';
import type { SandboxContext, SandboxPart } from './types.js';

export const DR = {
  zoneName: 'example.com',
  record: 'api.example.com.',
  primaryIp: '10.0.0.10',
  drIp: '10.1.0.10',
  primary: { region: 'us-east-1', cluster: 'prod-cluster', service: 'app', desiredCount: 4 },
  dr: { region: 'us-west-2', cluster: 'dr-cluster', service: 'app', desiredCount: 10 },
  backupBucket: 'backup-bucket',
  backupPrefix: 'database/',
  logsBucket: 'logs-bucket',
} as const;

export const batchTo = (ip: string) => ({
  Comment: 'runbook test',
  Changes: [{ Action: 'UPSERT', ResourceRecordSet: { Name: DR.record, Type: 'A', TTL: 60, ResourceRecords: [{ Value: ip }] } }],
});

function awsConfig(moto: MotoService, region: string) {
  return { region, endpoint: moto.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
}

/** Creates the zone (record → primary) and both ECS services; returns the hosted zone id. */
export async function seedDrAws(moto: MotoService): Promise<{ zoneId: string }> {
  const r53m = await import('@aws-sdk/client-route-53');
  const ecsm = await import('@aws-sdk/client-ecs');
  const r53 = new r53m.Route53Client(awsConfig(moto, 'us-east-1'));
  const zone = await r53.send(new r53m.CreateHostedZoneCommand({ Name: DR.zoneName, CallerReference: `ref-${Date.now()}-${Math.random()}` }));
  const zoneId = (zone.HostedZone?.Id ?? '').replace('/hostedzone/', '');
  await r53.send(new r53m.ChangeResourceRecordSetsCommand({ HostedZoneId: zoneId, ChangeBatch: batchTo(DR.primaryIp) as never }));
  r53.destroy();
  for (const side of [DR.primary, DR.dr]) {
    const ecs = new ecsm.ECSClient(awsConfig(moto, side.region));
    await ecs.send(new ecsm.CreateClusterCommand({ clusterName: side.cluster }));
    await ecs.send(
      new ecsm.RegisterTaskDefinitionCommand({ family: 'app', containerDefinitions: [{ name: 'api', image: 'registry.example.com/api:1.0.0', memory: 256 }] }),
    );
    await ecs.send(
      new ecsm.CreateServiceCommand({
        cluster: side.cluster,
        serviceName: side.service,
        taskDefinition: 'app',
        desiredCount: side === DR.primary ? DR.primary.desiredCount : 0,
      }),
    );
    ecs.destroy();
  }
  return { zoneId };
}

/** The record's current values and both desired counts: the state dr procedures change. */
export async function drState(moto: MotoService, zoneId: string): Promise<{ records: string[]; primary: number; dr: number }> {
  const r53m = await import('@aws-sdk/client-route-53');
  const ecsm = await import('@aws-sdk/client-ecs');
  const r53 = new r53m.Route53Client(awsConfig(moto, 'us-east-1'));
  const list = await r53.send(new r53m.ListResourceRecordSetsCommand({ HostedZoneId: zoneId }));
  r53.destroy();
  const records = (list.ResourceRecordSets ?? [])
    .filter((r) => r.Type !== 'NS' && r.Type !== 'SOA')
    .map((r) => `${r.Name} ${r.Type} ${r.TTL} ${(r.ResourceRecords ?? []).map((v) => v.Value).join(',')}`)
    .sort();
  const desired = async (side: { region: string; cluster: string; service: string }) => {
    const ecs = new ecsm.ECSClient(awsConfig(moto, side.region));
    try {
      const r = await ecs.send(new ecsm.DescribeServicesCommand({ cluster: side.cluster, services: [side.service] }));
      return r.services?.[0]?.desiredCount ?? -1;
    } finally {
      ecs.destroy();
    }
  };
  return { records, primary: await desired(DR.primary), dr: await desired(DR.dr) };
}

/** A real custom-format dump of a small database with `users` rows. */
export async function makeDump(pgSvc: PostgresService, file: string, rows = 25): Promise<Buffer> {
  const admin = new pg.Client({ connectionString: pgSvc.url });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS app_src');
  await admin.query('CREATE DATABASE app_src');
  await admin.end();
  const db = new pg.Client({ connectionString: pgSvc.url.replace(/\/postgres$/, '/app_src') });
  await db.connect();
  await db.query('CREATE TABLE users (id serial primary key, email text not null)');
  await db.query('CREATE TABLE orders (id serial primary key, user_id int references users(id), total numeric)');
  await db.query(`INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, $1::int) g`, [rows]);
  await db.end();
  await execa(pgBin('pg_dump'), ['-Fc', '-d', 'app_src', '-f', file], { env: { ...process.env, ...pgSuperuserEnv(pgSvc) } });
  return readFileSync(file);
}

export async function s3Client(moto: MotoService) {
  const s3m = await import('@aws-sdk/client-s3');
  return { s3: new s3m.S3Client(awsConfig(moto, 'us-east-1')), s3m };
}

export async function putObject(moto: MotoService, bucket: string, key: string, body: Buffer | string, opts: { create?: boolean } = {}): Promise<void> {
  const { s3, s3m } = await s3Client(moto);
  try {
    if (opts.create)
      await s3.send(new s3m.CreateBucketCommand({ Bucket: bucket })).catch((e: { name?: string }) => {
        if (e.name !== 'BucketAlreadyOwnedByYou') throw e;
      });
    await s3.send(new s3m.PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  } finally {
    s3.destroy();
  }
}

export async function listBucket(moto: MotoService, bucket: string): Promise<string[]> {
  const { s3, s3m } = await s3Client(moto);
  try {
    const r = await s3.send(new s3m.ListObjectsV2Command({ Bucket: bucket }));
    return (r.Contents ?? []).map((o) => `${o.Key} ${o.Size} ${o.ETag}`).sort();
  } finally {
    s3.destroy();
  }
}

/** Writes an executable shell script (a TEST fixture standing in for certbot or nginx). */
export function writeScript(file: string, body: string): string {
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir)
      .map((f) => `${f} ${statSync(join(dir, f)).size}`)
      .sort();
  } catch {
    return [];
  }
}

export async function startDrPart(ctx: SandboxContext): Promise<SandboxPart> {
  const shared = await sandboxMoto(ctx);
  const moto = shared.moto;
  const stops: Array<() => Promise<void>> = [() => shared.release()];
  const pgSvc = await startPostgres({ preload: [] }).catch(async (err: unknown) => {
    await shared.release();
    throw err;
  });
  stops.unshift(() => pgSvc.stop());
  try {
    const { zoneId } = await seedDrAws(moto);
    const dump = await makeDump(pgSvc, join(ctx.dir, 'app.dump'));
    await putObject(moto, DR.backupBucket, `${DR.backupPrefix}app-2024-01-01.dump`, dump, { create: true });
    await putObject(moto, DR.logsBucket, 'archive/.keep', '', { create: true });
    const drHealth = await startHttpService((req) =>
      req.pathname === '/health' ? { status: 200, body: { status: 'ok', region: DR.dr.region } } : { status: 404 },
    );
    stops.unshift(() => drHealth.stop());

    const certs = await makeTestCertificates(join(ctx.dir, 'certs'), [{ name: 'web', hosts: ['localhost', '127.0.0.1'], days: 90 }]);
    const tlsSrv = await startTlsServer({ certPem: certs.certs.web.chainPem, keyPem: certs.certs.web.keyPem });
    stops.unshift(() => tlsSrv.stop());
    const bin = join(ctx.dir, 'bin');
    mkdirSync(bin, { recursive: true });
    const certbot = writeScript(join(bin, 'certbot'), `echo "certbot $*" >> "${join(bin, 'calls.log')}"\necho "No renewals were attempted."`);
    const nginx = writeScript(join(bin, 'nginx'), `echo "nginx $*" >> "${join(bin, 'calls.log')}"`);

    const logDir = join(ctx.dir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const old = (Date.now() - 10 * 86_400_000) / 1000;
    for (const name of ['app-1.log', 'app-2.log']) {
      writeFileSync(join(logDir, name), `${name}: ${'GET /api/users 200\n'.repeat(500)}`);
      utimesSync(join(logDir, name), old, old);
    }
    writeFileSync(join(logDir, 'current.log'), 'today\n');

    return {
      name: 'dr',
      environment: {
        aws: { region: 'us-east-1', endpoint: moto.endpoint },
        dr: {
          route53: { hostedZoneId: zoneId, failover: batchTo(DR.drIp), failback: batchTo(DR.primaryIp), syncTimeout: '30s', syncInterval: '200ms' },
          primary: { ...DR.primary, health: { url: `${drHealth.url}/health`, attempts: 5, interval: '100ms', timeout: '2s' } },
          dr: { ...DR.dr, health: { url: `${drHealth.url}/health`, attempts: 5, interval: '100ms', timeout: '2s' } },
        },
        backups: { bucket: DR.backupBucket, prefix: DR.backupPrefix, restoreTest: { url: { env: 'BACKUP_TEST_DATABASE_URL' }, table: 'users' } },
        certs: { hosts: [`localhost:${tlsSrv.port}`], ca: certs.ca.certPem, minDays: 14, certbot: [certbot, 'renew'], reload: [nginx, '-s', 'reload'] },
        logs: { dir: logDir, compressAfter: '7d', deleteAfter: '30d', archive: `s3://${DR.logsBucket}/archive` },
      },
      env: { ...moto.env(), BACKUP_TEST_DATABASE_URL: pgSvc.url },
      async fingerprint() {
        const s = await drState(moto, zoneId);
        const backups = await listBucket(moto, DR.backupBucket);
        const logs = await listBucket(moto, DR.logsBucket);
        const dbs = new pg.Client({ connectionString: pgSvc.url });
        await dbs.connect();
        const names = (await dbs.query<{ datname: string }>('SELECT datname FROM pg_database ORDER BY 1')).rows.map((r) => r.datname);
        await dbs.end();
        return JSON.stringify({ ...s, backups, logs, logDir: listDir(logDir), databases: names });
      },
      async stop() {
        for (const s of stops) await s().catch(() => undefined);
      },
    };
  } catch (err) {
    for (const s of stops) await s().catch(() => undefined);
    throw err;
  }
}

/** What a fault proxy sees of a request to moto. */
export interface ProxiedRequest {
  method: string;
  path: string;
  /** X-Amz-Target for JSON protocols (ECS), e.g. "AmazonEC2ContainerServiceV20141113.UpdateService". */
  target: string;
  /** The region from the SigV4 credential scope. */
  region: string;
  body: string;
}

export interface FaultProxy {
  endpoint: string;
  /** Return an error reply for matching requests (null: pass through to moto). */
  fault: ((r: ProxiedRequest) => { status: number; headers?: Record<string, string>; body: string } | null) | null;
  seen: ProxiedRequest[];
  stop(): Promise<void>;
}

/** A pass-through proxy in front of moto that can answer chosen AWS calls with an AWS error (fault injection). */
export async function startFaultProxy(moto: MotoService): Promise<FaultProxy> {
  const http = await import('node:http');
  const proxy: FaultProxy = { endpoint: '', fault: null, seen: [], stop: async () => undefined };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const auth = String(req.headers.authorization ?? '');
      const region = /Credential=[^/]+\/\d+\/([^/]+)\//.exec(auth)?.[1] ?? '';
      const seen: ProxiedRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        target: String(req.headers['x-amz-target'] ?? ''),
        region,
        body: body.toString(),
      };
      proxy.seen.push(seen);
      const f = proxy.fault?.(seen);
      if (f) {
        res.writeHead(f.status, f.headers ?? {});
        res.end(f.body);
        return;
      }
      const up = http.request({ host: moto.host, port: moto.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', (e) => {
        res.writeHead(502);
        res.end(String(e));
      });
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  proxy.endpoint = `http://127.0.0.1:${port}`;
  proxy.stop = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return proxy;
}

/** An ECS (JSON protocol) error reply. */
export const ecsError = (type: string, message: string) => ({
  status: 400,
  headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type },
  body: JSON.stringify({ __type: type, message }),
});
/** A Route 53 (REST-XML) error reply. */
export const route53Error = (code: string, message: string) => ({
  status: 400,
  headers: { 'content-type': 'text/xml' },
  body: `<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>`,
});
