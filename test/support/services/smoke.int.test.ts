/**
 * Proves the real-service helpers in test/support/services work for real: PostgreSQL with a
 * streaming replica and pg_stat_statements, redis (open, protected, cluster), moto, an HTTP
 * fake and a TLS server presenting test-CA certificates. Everything is stopped (twice) at the end.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { execa } from 'execa';
import { Cluster, Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  makeTestCertificates,
  pgBin,
  pgSuperuserEnv,
  redisCommands,
  RespError,
  requireBinary,
  startHttpService,
  startMoto,
  startPostgres,
  startRedis,
  startRedisCluster,
  startTlsServer,
  waitFor,
  type HttpService,
  type MotoService,
  type PostgresService,
  type RedisClusterService,
  type RedisService,
  type TestCertificates,
  type TlsServerService,
} from './index.js';

let pgSvc: PostgresService;
let redis: RedisService;
let redisProtected: RedisService;
let cluster: RedisClusterService;
let moto: MotoService;
let http: HttpService;
let certs: TestCertificates;
const tlsServers: Record<string, TlsServerService> = {};
const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-certs-'));
const stops: (() => Promise<void>)[] = [];
const timings: Record<string, number> = {};

async function timed<T extends { stop(): Promise<void> }>(name: string, start: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const svc = await start();
  timings[name] = Math.round(performance.now() - t0);
  stops.push(() => svc.stop());
  return svc;
}

beforeAll(async () => {
  const results = await Promise.allSettled([
    timed('postgres+replica', () => startPostgres({ replica: true })).then((s) => (pgSvc = s)),
    timed('redis', () => startRedis()).then((s) => (redis = s)),
    timed('redis (acl+password)', () => startRedis({ username: 'ops', password: 's3cret-pw' })).then((s) => (redisProtected = s)),
    timed('redis cluster', () => startRedisCluster()).then((s) => (cluster = s)),
    timed('moto', () => startMoto()).then((s) => (moto = s)),
    timed('http', () => startHttpService((req) => (req.pathname === '/health' ? { status: 200, body: { ok: true } } : { status: 404, body: 'nope' }))).then(
      (s) => (http = s),
    ),
    (async () => {
      const t0 = performance.now();
      certs = await makeTestCertificates(certDir, [
        { name: 'valid', hosts: ['localhost', '127.0.0.1'], days: 30 },
        { name: 'expired', hosts: ['localhost', '127.0.0.1'], days: -2 },
        { name: 'self', hosts: ['localhost', '127.0.0.1'], days: 10, selfSigned: true },
      ]);
      timings['certificates'] = Math.round(performance.now() - t0);
      for (const name of ['valid', 'expired', 'self']) {
        const c = certs.certs[name]!;
        tlsServers[name] = await timed(`tls ${name}`, () => startTlsServer({ certPem: name === 'valid' ? c.chainPem : c.certPem, keyPem: c.keyPem }));
      }
    })(),
  ]);
  console.log('service start-up times (ms, started concurrently):', timings);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}, 60_000);

afterAll(async () => {
  const t0 = performance.now();
  await Promise.all(stops.map((s) => s()));
  // stop() is idempotent: a second round must be a harmless no-op.
  await Promise.all(stops.map((s) => s()));
  fs.rmSync(certDir, { recursive: true, force: true });
  console.log(`all services stopped in ${Math.round(performance.now() - t0)} ms`);
}, 30_000);

function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('postgres', () => {
  it('answers queries on the primary with scram password auth', async () => {
    expect(pgSvc.url).toBe(`postgres://postgres:${pgSvc.password}@127.0.0.1:${pgSvc.port}/postgres`);
    const c = new pg.Client({ connectionString: pgSvc.url });
    await c.connect();
    try {
      const r = await c.query<{ v: number; recovery: boolean }>('select 41 + 1 as v, pg_is_in_recovery() as recovery');
      expect(r.rows[0]).toEqual({ v: 42, recovery: false });
      const bad = new pg.Client({ connectionString: pgSvc.url.replace(pgSvc.password, 'wrong') });
      await expect(bad.connect()).rejects.toThrow(/password authentication failed/);
    } finally {
      await c.end();
    }
  });

  it('streams to a hot-standby replica', async () => {
    expect(pgSvc.replicaUrl).toBeDefined();
    const primary = new pg.Client({ connectionString: pgSvc.url });
    const replica = new pg.Client({ connectionString: pgSvc.replicaUrl! });
    await Promise.all([primary.connect(), replica.connect()]);
    try {
      const rep = await primary.query<{ state: string; application_name: string }>('select state, application_name from pg_stat_replication');
      expect(rep.rows).toEqual([{ state: 'streaming', application_name: 'replica' }]);
      await primary.query('create table smoke (id int primary key, note text)');
      await primary.query("insert into smoke values (1, 'from primary')");
      const row = await waitFor(
        'row on replica',
        async () => {
          const r = await replica.query<{ note: string }>('select note from smoke where id = 1').catch(() => undefined);
          return r?.rows[0];
        },
        { timeoutMs: 5000 },
      );
      expect(row).toEqual({ note: 'from primary' });
      const ro = await replica.query<{ r: boolean }>('select pg_is_in_recovery() as r');
      expect(ro.rows[0]?.r).toBe(true);
      await expect(replica.query('insert into smoke values (2, null)')).rejects.toThrow(/read-only/);
    } finally {
      await Promise.all([primary.end(), replica.end()]);
    }
  });

  it('has pg_stat_statements preloaded and queryable', async () => {
    const c = new pg.Client({ connectionString: pgSvc.url });
    await c.connect();
    try {
      const preload = await c.query<{ v: string }>("select current_setting('shared_preload_libraries') as v");
      expect(preload.rows[0]?.v).toContain('pg_stat_statements');
      await c.query('select count(*) from pg_class where relname = $1', ['smoke']);
      const r = await c.query<{ calls: string }>(
        "select calls::text from pg_stat_statements where query like 'select count(*) from pg_class where relname = $1%'",
      );
      expect(Number(r.rows[0]?.calls)).toBeGreaterThanOrEqual(1);
    } finally {
      await c.end();
    }
  });

  it('works with pg_dump / pg_restore through pgSuperuserEnv()', async () => {
    const dump = path.join(certDir, 'smoke.dump');
    const env = pgSuperuserEnv(pgSvc);
    await execa(pgBin('pg_dump'), ['-Fc', '-t', 'smoke', '-f', dump], { env });
    const list = await execa(pgBin('pg_restore'), ['-l', dump], { env });
    expect(list.stdout).toMatch(/TABLE public smoke/);
    await execa(pgBin('psql'), ['-v', 'ON_ERROR_STOP=1', '-c', 'create database restored'], { env });
    await execa(pgBin('pg_restore'), ['-d', 'restored', dump], { env });
    const out = await execa(pgBin('psql'), ['-d', 'restored', '-Atc', 'select note from smoke'], { env });
    expect(out.stdout).toBe('from primary');
  });
});

describe('redis', () => {
  it('SET/GET on a standalone server', async () => {
    const r = new Redis(redis.url, { lazyConnect: true });
    await r.connect();
    try {
      await r.set('smoke', 'value');
      expect(await r.get('smoke')).toBe('value');
      // Persistence is off.
      expect(await r.config('GET', 'save')).toEqual(['save', '']);
      expect(await r.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
    } finally {
      r.disconnect();
    }
  });

  it('refuses commands without the password and accepts the ACL user', async () => {
    expect(redisProtected.url).toBe(`redis://ops:s3cret-pw@127.0.0.1:${redisProtected.port}`);
    const anon = new Redis({
      host: '127.0.0.1',
      port: redisProtected.port,
      lazyConnect: true,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    anon.on('error', () => undefined);
    await anon.connect();
    try {
      await expect(anon.get('x')).rejects.toThrow(/NOAUTH/);
    } finally {
      anon.disconnect();
    }
    const user = new Redis(redisProtected.url, { lazyConnect: true });
    await user.connect();
    try {
      expect(await user.acl('WHOAMI')).toBe('ops');
      await user.set('k', 'v');
      expect(await user.get('k')).toBe('v');
    } finally {
      user.disconnect();
    }
    const [badAuth, goodAuth, whoami] = await redisCommands(redisProtected.port, [
      ['AUTH', 'ops', 'nope'],
      ['AUTH', 'ops', 's3cret-pw'],
      ['ACL', 'WHOAMI'],
    ]);
    expect(badAuth).toBeInstanceOf(RespError);
    expect(String((badAuth as Error).message)).toMatch(/^WRONGPASS/);
    expect([goodAuth, whoami]).toEqual(['OK', 'ops']);
  });

  it('routes cluster writes across all masters', async () => {
    expect(cluster.nodes).toHaveLength(3);
    const c = new Cluster(cluster.nodes, { lazyConnect: true });
    await c.connect();
    try {
      for (let i = 0; i < 60; i++) await c.set(`key:${i}`, String(i));
      expect(await c.get('key:42')).toBe('42');
      const masters = c.nodes('master');
      expect(masters).toHaveLength(3);
      const sizes = await Promise.all(masters.map((m) => m.dbsize()));
      expect(sizes.every((n) => n > 0)).toBe(true);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(60);
      const info = await masters[0]!.cluster('INFO');
      expect(String(info)).toContain('cluster_state:ok');
    } finally {
      c.disconnect();
    }
  });
});

describe('moto', () => {
  it('serves the moto API and resets', async () => {
    expect(moto.endpoint).toBe(`http://127.0.0.1:${moto.port}`);
    expect(moto.env()).toEqual({
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    const res = await fetch(`${moto.endpoint}/moto-api/data.json`);
    expect(res.status).toBe(200);
    expect(typeof (await res.json())).toBe('object');
    await moto.reset();
  });
});

describe('http fake', () => {
  it('answers with the routes and logs requests', async () => {
    const res = await fetch(`${http.url}/health?deep=1`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect((await fetch(`${http.url}/other`)).status).toBe(404);
    expect(http.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /health?deep=1', 'GET /other']);
    expect(http.requests[0]?.query.get('deep')).toBe('1');
    expect(http.requests[0]?.json).toEqual({ a: 1 });
  });
});

describe('tls', () => {
  function handshake(port: number, ca?: string): Promise<{ cert: tls.PeerCertificate; authorized: boolean; error?: string }> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca ? fs.readFileSync(ca) : undefined, rejectUnauthorized: false });
      s.once('secureConnect', () => {
        const out = { cert: s.getPeerCertificate(), authorized: s.authorized, error: s.authorizationError ? String(s.authorizationError) : undefined };
        s.destroy();
        resolve(out as { cert: tls.PeerCertificate; authorized: boolean; error?: string });
      });
      s.once('error', reject);
    });
  }

  it('presents a test-CA certificate with the requested validity and SANs', async () => {
    const spec = certs.certs['valid']!;
    const { cert, authorized, error } = await handshake(tlsServers['valid']!.port, certs.ca.certPem);
    expect(error).toBeUndefined();
    expect(authorized).toBe(true);
    expect(new Date(cert.valid_to).getTime()).toBe(spec.notAfter.getTime());
    expect(new Date(cert.valid_from).getTime()).toBe(spec.notBefore.getTime());
    const days = (spec.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
    expect(cert.subjectaltname).toBe('DNS:localhost, IP Address:127.0.0.1');
    expect(cert.issuer.CN).toBe('runbook test CA');
  });

  it('serves expired and self-signed certificates that fail verification', async () => {
    const expired = await handshake(tlsServers['expired']!.port, certs.ca.certPem);
    expect(expired.error).toBe('CERT_HAS_EXPIRED');
    expect(new Date(expired.cert.valid_to).getTime()).toBe(certs.certs['expired']!.notAfter.getTime());
    expect(new Date(expired.cert.valid_to).getTime()).toBeLessThan(Date.now() - 86_400_000);
    const self = await handshake(tlsServers['self']!.port, certs.ca.certPem);
    expect(self.error).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(self.cert.issuer.CN).toBe(self.cert.subject.CN);
  });
});

describe('requireBinary', () => {
  it('names the package to install when a binary is missing', () => {
    expect(requireBinary('node', 'n/a')).toMatch(/node$/);
    expect(() => requireBinary('definitely-not-a-binary-xyz', 'apt-get install -y xyz')).toThrow(
      'definitely-not-a-binary-xyz not found: apt-get install -y xyz',
    );
  });
});

describe('stop', () => {
  // Runs last (file order): stop everything, then prove the ports are closed and temp dirs gone.
  it('stops every service, idempotently, leaving nothing listening', async () => {
    const ports = [
      pgSvc.port,
      pgSvc.replicaPort!,
      redis.port,
      redisProtected.port,
      ...cluster.nodes.map((n) => n.port),
      moto.port,
      http.port,
      ...Object.values(tlsServers).map((s) => s.port),
    ];
    const dirs = [pgSvc.baseDir, redis.dir, redisProtected.dir, cluster.dir];
    await Promise.all([pgSvc.stop(), pgSvc.stop(), redis.stop(), cluster.stop(), moto.stop(), http.stop()]);
    await Promise.all(stops.map((s) => s()));
    for (const port of ports) expect(await portRefuses(port), `port ${port} still open`).toBe(true);
    for (const dir of dirs) expect(fs.existsSync(dir), `${dir} left behind`).toBe(false);
  }, 20_000);
});
