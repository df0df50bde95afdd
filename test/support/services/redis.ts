/**
 * Real redis-server for integration tests: a standalone server (optionally password / ACL
 * protected) and a 3-master cluster created with `redis-cli --cluster create`.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { execa } from 'execa';
import { LOOPBACK, StartError, freePort, processGroup, requireBinary, spawnService, startupError, waitFor, withPortRetry, type Spawned } from './util.js';

export const REDIS_INSTALL_HINT = 'apt-get install -y redis-server';

// ---------------------------------------------------------------------------
// Minimal RESP client (readiness probes without depending on ioredis)
// ---------------------------------------------------------------------------

export type RespValue = string | number | null | RespError | RespValue[];
export class RespError extends Error {}

function encode(args: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.from(a);
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parse one RESP value from buf at offset; returns undefined when incomplete. */
function parse(buf: Buffer, offset: number): { value: RespValue; next: number } | undefined {
  const eol = buf.indexOf('\r\n', offset);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[offset] ?? 0);
  const line = buf.toString('utf8', offset + 1, eol);
  const after = eol + 2;
  switch (type) {
    case '+':
      return { value: line, next: after };
    case '-':
      return { value: new RespError(line), next: after };
    case ':':
      return { value: Number(line), next: after };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: after };
      if (buf.length < after + len + 2) return undefined;
      return { value: buf.toString('utf8', after, after + len), next: after + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      const items: RespValue[] = [];
      let pos = after;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, pos);
        if (!r) return undefined;
        items.push(r.value);
        pos = r.next;
      }
      return { value: items, next: pos };
    }
    default:
      throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
  }
}

/**
 * Send commands on one short-lived connection and return one reply per command
 * (error replies are returned as RespError values, not thrown).
 */
export function redisCommands(port: number, commands: readonly (readonly string[])[], opts: { host?: string; timeoutMs?: number } = {}): Promise<RespValue[]> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: opts.host ?? LOOPBACK, port });
    let buf = Buffer.alloc(0);
    const replies: RespValue[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${LOOPBACK}:${port} did not answer`));
    }, opts.timeoutMs ?? 2000);
    sock.on('connect', () => sock.write(Buffer.concat(commands.map(encode))));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let pos = 0;
      for (;;) {
        const r = parse(buf, pos);
        if (!r) break;
        replies.push(r.value);
        pos = r.next;
      }
      buf = buf.subarray(pos);
      if (replies.length >= commands.length) {
        clearTimeout(timer);
        sock.destroy();
        resolve(replies);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (replies.length < commands.length) reject(new Error(`redis ${LOOPBACK}:${port} closed the connection`));
    });
  });
}

/** Ready = the server answers PING with PONG, or with NOAUTH when protected (not LOADING). */
async function redisReady(port: number): Promise<boolean> {
  const [r] = await redisCommands(port, [['PING']], { timeoutMs: 1000 });
  if (r === 'PONG') return true;
  return r instanceof RespError && /^NOAUTH/.test(r.message);
}

// ---------------------------------------------------------------------------
// One redis-server process
// ---------------------------------------------------------------------------

interface RedisProc {
  port: number;
  proc: Spawned;
}

async function spawnRedis(
  what: string,
  dir: string,
  extraArgs: (port: number, extraPorts: number[]) => string[],
  extraPorts: number,
  track: (proc: Spawned) => void,
): Promise<RedisProc & { extra: number[] }> {
  const redisServer = requireBinary('redis-server', REDIS_INSTALL_HINT);
  fs.mkdirSync(dir, { recursive: true });
  return withPortRetry(async () => {
    const port = await freePort();
    const extra: number[] = [];
    for (let i = 0; i < extraPorts; i++) extra.push(await freePort());
    const logFile = path.join(dir, `redis-${port}.log`);
    const args = [
      '--port',
      String(port),
      '--bind',
      LOOPBACK,
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--logfile',
      '',
      '--loglevel',
      'notice',
      ...extraArgs(port, extra),
    ];
    const proc = spawnService(redisServer, args, {
      logFile,
      cwd: dir,
    });
    track(proc);
    try {
      await waitFor(`${what} on ${LOOPBACK}:${port}`, () => redisReady(port), {
        timeoutMs: 15_000,
        abortIf: () => {
          if (proc.hasExited()) throw startupError(what, 'redis-server exited', logFile);
        },
      });
    } catch (err) {
      await proc.kill(1000);
      if (err instanceof StartError) throw err;
      throw startupError(what, (err as Error).message, logFile);
    }
    return { port, proc, extra };
  });
}

// ---------------------------------------------------------------------------
// startRedis
// ---------------------------------------------------------------------------

export interface StartRedisOptions {
  /** requirepass for the default user (and the ACL user's password when `username` is given). */
  password?: string;
  /** Create an ACL user with full access (password generated if not given). */
  username?: string;
}

export interface RedisService {
  /** redis://[user]:[password]@127.0.0.1:PORT */
  url: string;
  host: string;
  port: number;
  username?: string;
  password?: string;
  dir: string;
  logFile: string;
  startupMs: number;
  /** Idempotent: kill the server and remove its temp dir. */
  stop(): Promise<void>;
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisService> {
  const t0 = performance.now();
  const { dir, procs, stop } = processGroup('redis');
  const username = opts.username;
  const password = opts.password ?? (username ? randomBytes(12).toString('hex') : undefined);
  try {
    const { port, proc } = await spawnRedis(
      'redis-server',
      dir,
      () => [
        ...(password ? ['--requirepass', password] : []),
        ...(username && password ? ['--user', username, 'on', `>${password}`, '~*', '&*', '+@all'] : []),
      ],
      0,
      (p) => procs.push(p),
    );
    const auth = username ? `${encodeURIComponent(username)}:${encodeURIComponent(password ?? '')}@` : password ? `:${encodeURIComponent(password)}@` : '';
    const svc: RedisService = {
      url: `redis://${auth}${LOOPBACK}:${port}`,
      host: LOOPBACK,
      port,
      dir,
      logFile: proc.logFile,
      startupMs: Math.round(performance.now() - t0),
      stop,
    };
    if (username) svc.username = username;
    if (password) svc.password = password;
    return svc;
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// startRedisCluster
// ---------------------------------------------------------------------------

export interface StartRedisClusterOptions {
  /** Number of masters (>= 3, default 3); no replicas. */
  masters?: number;
  /** cluster-node-timeout (default 2000 ms: nodes ping each other every second, so redis-cli sees the join fast). */
  nodeTimeoutMs?: number;
}

export interface RedisClusterService {
  nodes: { host: string; port: number }[];
  /** redis://127.0.0.1:PORT per node */
  urls: string[];
  dir: string;
  startupMs: number;
  /** Idempotent: kill all nodes and remove the temp dir. */
  stop(): Promise<void>;
}

export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<RedisClusterService> {
  const t0 = performance.now();
  const masters = opts.masters ?? 3;
  if (masters < 3) throw new Error('a redis cluster needs at least 3 masters');
  const redisCli = requireBinary('redis-cli', REDIS_INSTALL_HINT);
  const { dir, procs, stop } = processGroup('redis-cluster');
  try {
    const settled = await Promise.allSettled(
      Array.from({ length: masters }, (_, i) =>
        spawnRedis(
          `redis cluster node ${i}`,
          path.join(dir, `node${i}`),
          (port, [busPort]) => [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            path.join(dir, `node${i}`, `nodes-${port}.conf`),
            // Explicit bus port: port+10000 may be past 65535 or taken.
            '--cluster-port',
            String(busPort),
            '--cluster-node-timeout',
            String(opts.nodeTimeoutMs ?? 2000),
            '--cluster-require-full-coverage',
            'yes',
          ],
          1,
          (p) => procs.push(p),
        ),
      ),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const started = settled.map((r) => (r as PromiseFulfilledResult<RedisProc>).value);
    const nodes = started.map((s) => ({ host: LOOPBACK, port: s.port }));
    const createLog = path.join(dir, 'cluster-create.log');
    const res = await execa(redisCli, ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      reject: false,
      all: true,
      stdin: 'ignore',
      timeout: 30_000,
    });
    fs.writeFileSync(createLog, res.all ?? '');
    if (res.exitCode !== 0 || !/All 16384 slots covered/.test(res.all ?? '')) {
      throw startupError('redis cluster', `redis-cli --cluster create exited with ${res.exitCode}`, createLog, false);
    }
    await waitFor(
      'redis cluster_state:ok on all nodes',
      async () => {
        const infos = await Promise.all(nodes.map((n) => redisCommands(n.port, [['CLUSTER', 'INFO']])));
        return infos.every(([info]) => typeof info === 'string' && info.includes('cluster_state:ok'));
      },
      { timeoutMs: 20_000 },
    ).catch((err: unknown) => {
      throw startupError('redis cluster', (err as Error).message, createLog, false);
    });
    return {
      nodes,
      urls: nodes.map((n) => `redis://${n.host}:${n.port}`),
      dir,
      startupMs: Math.round(performance.now() - t0),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
