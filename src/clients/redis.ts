import { readFileSync } from 'node:fs';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import type { EnvironmentConfig, ValueOrRef } from '../core/config.js';
import { parseDuration } from '../core/duration.js';
import { StepError, UsageError } from '../core/errors.js';
import { sha1Hex } from '../core/hash.js';

/** Where and how to connect, with secrets already resolved (never printed: see `target`). */
export interface RedisConnectOptions {
  /** redis:// or rediss:// (TLS); `/N` selects a database. Exactly one of url and nodes. */
  url?: string;
  /** A cluster's seed nodes, host:port. */
  nodes?: string[];
  username?: string;
  password?: string;
  db?: number;
  tls?: boolean | { ca?: string; servername?: string; insecure?: boolean };
  connectTimeoutMs?: number;
  /** Where the settings came from, for error messages (e.g. environments.prod.redis). */
  configPath?: string;
}

/** One reply of a bounded scan script: the cursor to continue from and how many keys it counted or removed. */
export interface ScanBatch {
  cursor: string;
  n: number;
}

/** `count` only counts matches; `unlink` removes them in the same server call. */
export type ScanOp = 'count' | 'unlink';

/** One reply of the bounded sample script: like a count, plus how many keys (of any name) the same buckets held. */
export interface SampleBatch extends ScanBatch {
  /** Keys in the buckets sampled, whatever their name; -1 when that cannot be known (see `sampleBatch`). */
  seen: number;
}

/**
 * A share of one SCAN iteration: the cursors whose value modulo `k` is `low`, up to the cursor
 * `boundary` where the next share starts ('0' for the last). See `lanes()` in the flush steps.
 */
export interface ScanLane {
  k: number;
  low: number;
  boundary: string;
}

/** One Redis server: the standalone server, or one master of a cluster. */
export interface RedisNode {
  /** host:port, safe to print. */
  readonly label: string;
  /**
   * One server-side step of a SCAN over keys matching `pattern`, starting at `cursor`: SCAN and
   * (for `unlink`) UNLINK repeat inside one Lua call until about `budgetUs` microseconds have passed,
   * so the server is never blocked for longer than that plus one small SCAN.
   */
  scanBatch(op: ScanOp, cursor: string, pattern: string, budgetUs: number, lane?: ScanLane): Promise<ScanBatch>;
  /**
   * One bounded step of a sample, from `cursor` on: every SCAN MATCH is paired with a plain SCAN of
   * the same buckets, so the reply says how many of the keys seen match (never deletes anything).
   * Stops after about `budgetUs` µs or `limit` keys seen. `seen` is -1 when the two SCANs went
   * different ways (a cluster node scans only the slot of a pattern with a hash tag).
   */
  sampleBatch(cursor: string, pattern: string, budgetUs: number, limit: number): Promise<SampleBatch>;
  /** INFO, parsed to field → value (all sections when none is given). */
  info(section?: string): Promise<Record<string, string>>;
  dbsize(): Promise<number>;
  /** DBSIZE and FLUSHDB ASYNC in one transaction: returns how many keys the flush removed. */
  flushAsync(): Promise<number>;
}

/** A connection to a server or a cluster (masters discovered at connect time). */
export interface RedisClient {
  /** host:port/db or cluster(seed,…), never with credentials. */
  readonly target: string;
  readonly cluster: boolean;
  readonly db: number;
  /**
   * How many lanes one SCAN iteration may be split into: 4 on a standalone Redis, whose cursor is
   * a plain reverse-binary bucket index; 1 on a cluster node (its cursor may carry a slot number).
   */
  readonly scanLanes: number;
  masters(): RedisNode[];
  close(): Promise<void>;
}

interface Endpoint {
  host: string;
  port: number;
  db: number;
  tls: boolean;
  username?: string;
  password?: string;
}

/** The environment's `redis` section with its secrets resolved (each registered for redaction by `secret`). */
export function redisOptions(
  r: NonNullable<EnvironmentConfig['redis']>,
  where: string,
  secret: (ref: ValueOrRef, what: string) => string,
): RedisConnectOptions {
  const opts: RedisConnectOptions = {
    url: r.url === undefined ? undefined : secret(r.url, `${where}.url`),
    nodes: r.nodes,
    username: r.username === undefined ? undefined : secret(r.username, `${where}.username`),
    password: r.password === undefined ? undefined : secret(r.password, `${where}.password`),
    db: r.db,
    tls: r.tls,
    connectTimeoutMs: r.connectTimeout === undefined ? undefined : parseDuration(r.connectTimeout, `${where}.connectTimeout`),
    configPath: where,
  };
  parseRedisEndpoints(opts);
  return opts;
}

/** Parses and checks the URL or seed nodes before anything is contacted (malformed → exit 2). */
export function parseRedisEndpoints(opts: RedisConnectOptions): Endpoint[] {
  const where = opts.configPath ?? 'redis';
  const tlsWanted = Boolean(opts.tls);
  if (opts.url !== undefined) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new UsageError(`${where}.url is not a valid URL`, 'write redis://host:6379/0, or rediss://host:6380 for TLS');
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
      throw new UsageError(
        `${where}.url must start with redis:// or rediss://, not ${u.protocol}//`,
        'write redis://host:6379/0, or rediss://host:6380 for TLS',
      );
    }
    if (!u.hostname) throw new UsageError(`${where}.url has no host`, 'write redis://host:6379/0');
    const path = u.pathname.replace(/^\//, '');
    if (path !== '' && !/^\d+$/.test(path)) throw new UsageError(`${where}.url: the path must be a database number, got "/${path}"`);
    const urlDb = path === '' ? undefined : Number(path);
    if (urlDb !== undefined && opts.db !== undefined && urlDb !== opts.db) {
      throw new UsageError(`${where}: the url selects database ${urlDb} but db is ${opts.db}`, 'keep one of them');
    }
    return [
      {
        host: u.hostname.replace(/^\[|\]$/g, ''),
        port: u.port ? Number(u.port) : 6379,
        db: opts.db ?? urlDb ?? 0,
        tls: u.protocol === 'rediss:' || tlsWanted,
        username: opts.username ?? (u.username ? decodeURIComponent(u.username) : undefined),
        password: opts.password ?? (u.password ? decodeURIComponent(u.password) : undefined),
      },
    ];
  }
  if (!opts.nodes?.length) throw new UsageError(`${where} needs url or nodes`);
  if (opts.db) throw new UsageError(`${where}.db: a Redis Cluster has only database 0`);
  return opts.nodes.map((n) => {
    const m = /^([^\s:/@]+):(\d{1,5})$/.exec(n);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`${where}.nodes: "${n}" is not host:port`);
    return { host: m[1], port: Number(m[2]), db: 0, tls: tlsWanted, username: opts.username, password: opts.password };
  });
}

// The scripts only ever see keys from this node's own SCAN; in a cluster they UNLINK key by key,
// because one UNLINK over keys of several slots is refused even inside a script.
const SCAN_BODY = (op: ScanOp, perKey: boolean) => {
  const act =
    op === 'count'
      ? 'n = n + #keys'
      : perKey
        ? "for i = 1, #keys do n = n + redis.call('UNLINK', keys[i]) end"
        : "for i = 1, #keys, 1000 do n = n + redis.call('UNLINK', unpack(keys, i, math.min(i + 999, #keys))) end";
  return `
local cursor, pattern, step, budget = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local k, low, boundary = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local function inlane(c) return c ~= '0' and (k == 1 or tonumber(c) % k == low) end
local function now() local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
local t0 = now()
local n = 0
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', step)
  if r[1] ~= boundary and not inlane(r[1]) then
    -- ran past this lane's end: redo it one bucket at a time, keeping only this lane's buckets
    repeat
      r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1)
      if inlane(r[1]) or r[1] == boundary then
        local keys = r[2]
        ${act}
      end
      cursor = r[1]
    until not inlane(cursor)
    return {boundary, n}
  end
  local keys = r[2]
  ${act}
  cursor = r[1]
until not inlane(cursor) or now() - t0 >= budget
return {cursor, n}
`;
};
/** Buckets visited per SCAN inside a script: small, so the time budget is checked often. */
const SCAN_STEP = 200;

// The sample: SCAN MATCH drives the cursor, as a count does (so a sample that comes back to cursor 0
// is an exact count); a plain SCAN of the same cursor and COUNT visits the same buckets (SCAN counts
// the keys it samples before it filters them), so `seen` is how many keys those buckets held.
const SAMPLE_BODY = `
local cursor, pattern, step, budget, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local function now() local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
local t0 = now()
local n, seen = 0, 0
repeat
  local m = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', step)
  if seen >= 0 then
    local all = redis.call('SCAN', cursor, 'COUNT', step)
    if all[1] == m[1] then seen = seen + #all[2] else seen = -1 end
  end
  n = n + #m[2]
  cursor = m[1]
until cursor == '0' or (seen >= 0 and seen >= limit) or now() - t0 >= budget
return {cursor, n, seen}
`;

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Turns ioredis's errors into one line that names the target and never the password. */
function describeError(err: unknown, label: string, tls: boolean, timeoutMs: number): StepError {
  const e = err as { message?: string; code?: string; lastNodeError?: unknown };
  if (e?.lastNodeError) return describeError(e.lastNodeError, label, tls, timeoutMs);
  const msg = String(e?.message ?? err);
  const code = e?.code ?? '';
  if (/WRONGPASS|invalid password|invalid username-password/i.test(msg)) {
    return new StepError(`Redis at ${label} rejected the username or password`, 'check the redis password (and username) the environment points at');
  }
  if (/NOAUTH/.test(msg)) return new StepError(`Redis at ${label} requires a password`, 'set redis.password: { env: REDIS_PASSWORD } in the environment');
  if (/NOPERM/.test(msg))
    return new StepError(
      `Redis at ${label} refused a command for this user: ${msg.split('\n')[0]}`,
      'the ACL user needs SCAN, UNLINK, EVALSHA, INFO, DBSIZE and FLUSHDB',
    );
  if (/^LOADING\b/.test(msg))
    return new StepError(
      `Redis at ${label} is still loading its data set into memory`,
      'wait until INFO persistence shows loading:0, then run the command again',
    );
  if (/DB index is out of range/i.test(msg)) return new StepError(`Redis at ${label} has no such database: ${msg}`, 'check redis.db (or the /N in the URL)');
  if (code === 'ECONNREFUSED')
    return new StepError(`cannot reach Redis at ${label}: connection refused`, 'is the server running, and are host and port right?');
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new StepError(`cannot reach Redis at ${label}: unknown host`, 'check the host name in the redis url or nodes');
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return new StepError(`cannot reach Redis at ${label}: host unreachable`);
  if (
    /ssl|tls|certificate|self[- ]signed|wrong version number|EPROTO|handshake/i.test(`${code} ${msg}`) ||
    code.startsWith('ERR_TLS') ||
    code.startsWith('ERR_SSL') ||
    /CERT|UNABLE_TO_VERIFY/.test(code)
  ) {
    return new StepError(
      `TLS with Redis at ${label} failed: ${msg.split('\n')[0]}`,
      'check that the server speaks TLS (rediss://) and that redis.tls.ca names its CA',
    );
  }
  if (code === 'ETIMEDOUT' || /timed? ?out/i.test(msg)) {
    return tls
      ? new StepError(
          `TLS handshake with Redis at ${label} did not complete within ${timeoutMs} ms`,
          'is the server speaking TLS? use redis:// for a plain server, rediss:// only for a TLS port',
        )
      : new StepError(`cannot reach Redis at ${label}: no answer within ${timeoutMs} ms`, 'is the host reachable from here (firewall, VPN)?');
  }
  if (/Connection is closed|ECONNRESET|EPIPE|Stream isn't writeable/i.test(`${code} ${msg}`))
    return new StepError(`the connection to Redis at ${label} was closed`);
  return new StepError(`Redis at ${label}: ${msg.split('\n')[0]}`);
}

class Node implements RedisNode {
  private lastError: unknown;
  private flagsShebang: boolean | undefined;
  private readonly shas = new Map<string, string>();

  constructor(
    private readonly redis: Redis,
    readonly label: string,
    private readonly perKey: boolean,
    private readonly tls: boolean,
    private readonly timeoutMs: number,
  ) {
    redis.on('error', (err: unknown) => (this.lastError = err));
  }

  private async run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      // "Connection is closed" says less than the error event that caused it.
      const msg = (err as Error)?.message ?? '';
      throw describeError(/Connection is closed/.test(msg) && this.lastError ? this.lastError : err, this.label, this.tls, this.timeoutMs);
    }
  }

  private async script(body: string): Promise<string> {
    if (this.flagsShebang === undefined) {
      const v = parseInfo(String(await this.redis.info('server'))).redis_version ?? '0';
      this.flagsShebang = Number(v.split('.')[0]) >= 7;
    }
    // allow-oom: deleting keys must work on a full server; allow-cross-slot-keys: cluster masters.
    return (this.flagsShebang ? '#!lua flags=allow-oom,allow-cross-slot-keys\n' : '') + body;
  }

  /** EVALSHA, loading the script first when the server does not have it (yet, or any more). */
  private async evalScript(body: string, args: string[]): Promise<unknown[]> {
    const src = await this.script(body);
    let sha = this.shas.get(src);
    if (!sha) {
      sha = sha1Hex(src);
      this.shas.set(src, sha);
    }
    try {
      return (await this.redis.call('EVALSHA', sha, '0', ...args)) as unknown[];
    } catch (err) {
      if (!/NOSCRIPT/.test((err as Error)?.message ?? '')) throw err;
      await this.redis.call('SCRIPT', 'LOAD', src);
      return (await this.redis.call('EVALSHA', sha, '0', ...args)) as unknown[];
    }
  }

  scanBatch(op: ScanOp, cursor: string, pattern: string, budgetUs: number, lane: ScanLane = { k: 1, low: 0, boundary: '0' }): Promise<ScanBatch> {
    return this.run(async () => {
      const args = [cursor, pattern, String(SCAN_STEP), String(Math.max(1, Math.round(budgetUs))), String(lane.k), String(lane.low), lane.boundary];
      const [next, n] = (await this.evalScript(SCAN_BODY(op, this.perKey), args)) as [string | Buffer, number];
      return { cursor: String(next), n: Number(n) };
    });
  }

  sampleBatch(cursor: string, pattern: string, budgetUs: number, limit: number): Promise<SampleBatch> {
    return this.run(async () => {
      const args = [cursor, pattern, String(SCAN_STEP), String(Math.max(1, Math.round(budgetUs))), String(Math.max(1, Math.round(limit)))];
      const [next, n, seen] = (await this.evalScript(SAMPLE_BODY, args)) as [string | Buffer, number, number];
      return { cursor: String(next), n: Number(n), seen: Number(seen) };
    });
  }

  info(section?: string): Promise<Record<string, string>> {
    return this.run(async () => parseInfo(String(section ? await this.redis.info(section) : await this.redis.info('everything'))));
  }

  dbsize(): Promise<number> {
    return this.run(() => this.redis.dbsize());
  }

  flushAsync(): Promise<number> {
    return this.run(async () => {
      const res = await this.redis.multi().dbsize().flushdb('ASYNC').exec();
      if (!res) throw new Error('the FLUSHDB transaction was aborted');
      for (const [err] of res) if (err) throw err;
      return Number(res[0][1]);
    });
  }
}

function tlsOptions(e: Endpoint, opts: RedisConnectOptions): RedisOptions['tls'] | undefined {
  if (!e.tls) return undefined;
  const t = typeof opts.tls === 'object' ? opts.tls : {};
  return {
    ca: t.ca ? readFileSync(t.ca) : undefined,
    servername: t.servername ?? (/^[\d.:]+$/.test(e.host) ? undefined : e.host),
    rejectUnauthorized: !t.insecure,
  };
}

/**
 * Connects with ioredis (loaded on first use). Nothing reconnects or retries behind the caller's
 * back: a dropped connection fails the command in flight, so a destructive loop stops where it is
 * and says how far it got.
 */
export async function connectRedis(opts: RedisConnectOptions): Promise<RedisClient> {
  const endpoints = parseRedisEndpoints(opts);
  const timeoutMs = opts.connectTimeoutMs ?? 5000;
  const { Redis: RedisCtor, Cluster: ClusterCtor } = await import('ioredis');
  const first = endpoints[0];
  const common: RedisOptions = {
    username: first.username,
    password: first.password,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableReadyCheck: true,
    connectionName: 'runbook',
    // CLIENT SETINFO (lib name and version) would read ioredis's package.json and cost a round trip
    // before the first command; the connection name already says who is connected.
    disableClientInfo: true,
    tls: tlsOptions(first, opts),
  };

  if (!opts.nodes) {
    const label = `${first.host}:${first.port}`;
    // No ready check (an INFO round trip before every command): a server still loading its data set
    // answers LOADING, which fails the command with that reason instead of waiting without a word.
    const redis = new RedisCtor({ ...common, enableReadyCheck: false, host: first.host, port: first.port, db: 0, lazyConnect: true });
    let lastError: unknown;
    redis.on('error', (err: unknown) => (lastError = err));
    // Listening from the start: without the ready check, a refused AUTH may close the connection
    // only after connect() resolved, and the first command then fails with that error's reason.
    const node = new Node(redis, label, false, first.tls, timeoutMs);
    try {
      await redis.connect();
      // ioredis would fall back to database 0 if SELECT failed; select explicitly and stop on error.
      if (first.db) await redis.select(first.db);
    } catch (err) {
      redis.disconnect();
      throw describeError(lastError ?? err, label, first.tls, timeoutMs);
    }
    return {
      target: `${label}/${first.db}`,
      cluster: false,
      db: first.db,
      scanLanes: 4,
      masters: () => [node],
      async close() {
        redis.disconnect();
      },
    };
  }

  const seeds = endpoints.map((e) => ({ host: e.host, port: e.port }));
  const label = `cluster ${seeds.map((s) => `${s.host}:${s.port}`).join(',')}`;
  const cluster: Cluster = new ClusterCtor(seeds, {
    lazyConnect: true,
    redisOptions: common,
    clusterRetryStrategy: () => null,
    slotsRefreshTimeout: timeoutMs,
    enableReadyCheck: true,
  });
  let lastError: unknown;
  cluster.on('error', (err: unknown) => (lastError = err));
  cluster.on('node error', (err: unknown) => (lastError = err));
  try {
    await cluster.connect();
  } catch (err) {
    cluster.disconnect();
    throw describeError((err as { lastNodeError?: unknown }).lastNodeError ?? lastError ?? err, label, first.tls, timeoutMs);
  }
  const masters = cluster.nodes('master').map((r) => new Node(r, `${r.options.host}:${r.options.port}`, true, first.tls, timeoutMs));
  if (masters.length === 0) {
    cluster.disconnect();
    throw new StepError(`Redis cluster ${label} reported no masters`);
  }
  return {
    target: label,
    cluster: true,
    db: 0,
    scanLanes: 1,
    masters: () => masters,
    async close() {
      cluster.disconnect();
    },
  };
}
