// Connecting to Redis from the environment's `redis` section, against real servers: a password
// from a secret reference, an ACL user, a database number; and the faults — wrong password, no
// password, unreachable host, TLS to a plain server, malformed URL — each one clear line, no stack,
// and never the password.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { freePort, redisCommands, startRedis, type RedisService } from '../../support/services/index.js';

let protectedRedis: RedisService;
let aclRedis: RedisService;
const PASSWORD = 'c0rrect-h0rse-battery';

beforeAll(async () => {
  [protectedRedis, aclRedis] = await Promise.all([startRedis({ password: PASSWORD }), startRedis({ username: 'ops', password: 'ops-secret-pw' })]);
}, 60_000);
afterAll(async () => {
  await Promise.all([protectedRedis?.stop(), aclRedis?.stop()]);
});

function cfg(redis: Record<string, unknown>) {
  return writeConfig({ default: 'staging', environments: { staging: { redis } } }).dir;
}

async function seed(port: number, auth: string[], db: number, n: number) {
  const r = await redisCommands(port, [auth, ['SELECT', String(db)], ['EVAL', `for i = 1, ${n} do redis.call('SET', 'user:' .. i, 'v') end return 1`, '0']]);
  expect(r[0]).toBe('OK');
}

function expectOneCleanLine(stderr: string, secret?: string) {
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(stderr).not.toMatch(/Unhandled error event/);
  if (secret) expect(stderr).not.toContain(secret);
}

describe('redis connection', () => {
  it('reads the password from a secret reference and uses the configured database', async () => {
    await seed(protectedRedis.port, ['AUTH', PASSWORD], 3, 40);
    const dir = cfg({ url: `redis://127.0.0.1:${protectedRedis.port}`, db: 3, password: { env: 'REDIS_PASSWORD' } });
    const r = await runCli(['cache', 'flush', '--pattern', 'user:*', '--yes', '--json', '--verbose'], { cwd: dir, env: { REDIS_PASSWORD: PASSWORD } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).steps.find((s: { id: string }) => s.id === 'unlink').data).toMatchObject({ deleted: 40 });
    expect(r.stderr).toMatch(/db 3/);
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  });

  it('accepts a URL with the password from an environment variable, and an ACL username', async () => {
    await seed(aclRedis.port, ['AUTH', 'ops', 'ops-secret-pw'], 0, 5);
    const dir = cfg({ url: { env: 'REDIS_URL' }, username: 'ops' });
    const r = await runCli(['cache', 'stats', '--json'], { cwd: dir, env: { REDIS_URL: `redis://:ops-secret-pw@127.0.0.1:${aclRedis.port}/0` } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).steps[0].data.keyspace.db0.keys).toBe(5);
    expect(r.stdout + r.stderr).not.toContain('ops-secret-pw');
  });

  it('a wrong password is one clear line (exit 1), and the password never appears', async () => {
    const dir = cfg({ url: `redis://127.0.0.1:${protectedRedis.port}`, password: { env: 'REDIS_PASSWORD' } });
    const r = await runCli(['cache', 'stats'], { cwd: dir, env: { REDIS_PASSWORD: 'not-the-password' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: Redis at 127\.0\.0\.1:\d+ rejected the username or password/);
    expectOneCleanLine(r.stderr, 'not-the-password');
  });

  it('a missing password says the server requires one', async () => {
    const r = await runCli(['cache', 'stats'], { cwd: cfg({ url: `redis://127.0.0.1:${protectedRedis.port}` }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/requires a password/);
    expectOneCleanLine(r.stderr);
  });

  it('an unreachable host is one clear line (exit 1)', async () => {
    const port = await freePort();
    const r = await runCli(['cache', 'flush', '--pattern', 'user:*', '--yes'], { cwd: cfg({ url: `redis://127.0.0.1:${port}` }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cannot reach Redis at 127\\.0\\.0\\.1:${port}: connection refused`));
    expectOneCleanLine(r.stderr);
  });

  it('TLS to a plain server fails with one clear line (exit 1)', async () => {
    const dir = cfg({ url: `rediss://127.0.0.1:${protectedRedis.port}`, password: { env: 'REDIS_PASSWORD' }, connectTimeout: '1s' });
    const r = await runCli(['cache', 'stats'], { cwd: dir, env: { REDIS_PASSWORD: PASSWORD } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/TLS (handshake )?with Redis at 127\.0\.0\.1:\d+/);
    expect(r.stderr).toMatch(/hint: .*TLS/);
    expectOneCleanLine(r.stderr, PASSWORD);
  });

  it('a database the server does not have fails instead of falling back to db 0', async () => {
    const r = await runCli(['cache', 'flush', '--pattern', 'user:*', '--yes'], {
      cwd: cfg({ url: `redis://127.0.0.1:${aclRedis.port}/999`, username: 'ops', password: { env: 'P' } }),
      env: { P: 'ops-secret-pw' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no such database/);
    expect(await redisCommands(aclRedis.port, [['AUTH', 'ops', 'ops-secret-pw'], ['DBSIZE']])).toEqual(['OK', 5]);
  });

  it.each([
    [{ url: { env: 'REDIS_URL' } }, { REDIS_URL: 'not a url' }, /redis\.url is not a valid URL/],
    [{ url: { env: 'REDIS_URL' } }, { REDIS_URL: 'http://127.0.0.1:6379' }, /must start with redis:\/\/ or rediss:\/\//],
    [{ url: 'redis://127.0.0.1:6379/x' }, {}, /path must be a database number/],
    [{ url: 'redis://127.0.0.1:6379', nodes: ['127.0.0.1:7000'] }, {}, /exactly one of url .* or nodes/],
    [{ nodes: ['nohost'] }, {}, /host:port/],
    [{ url: 'redis://127.0.0.1:6379', password: 'inline' }, {}, /redis\.password/],
  ])('rejects a malformed redis section %j with exit 2', async (redis, env, message) => {
    const r = await runCli(['cache', 'stats'], { cwd: cfg(redis), env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expectOneCleanLine(r.stderr);
  });
});
