import type { RedisNode } from '../../clients/index.js';
import { describeRef, type ResolvedEnvironment } from '../../core/config.js';

/** redis-cli connection flags for an environment, without contacting anything or printing a secret. */
export function redisCli(env: ResolvedEnvironment): string {
  const r = env.config.redis;
  if (!r) return 'redis-cli';
  const flags: string[] = [];
  if (r.nodes) {
    const [host, port] = r.nodes[0].split(':');
    flags.push('-c', `-h ${host}`, `-p ${port}`);
  } else if (typeof r.url === 'string') {
    try {
      const u = new URL(r.url);
      flags.push(`-h ${u.hostname}`, `-p ${u.port || 6379}`);
      const db = r.db ?? (/^\/\d+$/.test(u.pathname) ? Number(u.pathname.slice(1)) : 0);
      if (db) flags.push(`-n ${db}`);
      if (u.protocol === 'rediss:') flags.push('--tls');
    } catch {
      flags.push(`-u '${r.url}'`);
    }
  } else if (r.url) {
    flags.push(`-u "${describeRef(r.url)}"`);
  }
  if (r.nodes || typeof r.url !== 'string') {
    if (r.db) flags.push(`-n ${r.db}`);
  }
  if (r.tls && !flags.includes('--tls')) flags.push('--tls');
  if (r.username) flags.push(`--user ${typeof r.username === 'string' ? r.username : `"${describeRef(r.username)}"`}`);
  if (r.password) flags.push('--askpass');
  return ['redis-cli', ...flags].join(' ');
}

/** Keyspace counters of one server, as INFO reports them. */
export interface NodeStats {
  node: string;
  hits: number;
  misses: number;
  usedMemory: number;
  peakMemory: number;
  evictedKeys: number;
  expiredKeys: number;
  opsPerSec: number;
  /** Per database: keys and keys with a TTL. */
  keyspace: Record<string, { keys: number; expires: number }>;
}

/** The whole target: every master summed (a cluster's peak is the sum of its nodes' peaks). */
export interface CacheStats extends Omit<NodeStats, 'node'> {
  /** hits / (hits + misses), or null before the first lookup. */
  hitRate: number | null;
  nodes: NodeStats[];
}

const num = (v: string | undefined) => (v === undefined || v === '' ? 0 : Number(v) || 0);

export function nodeStats(node: string, info: Record<string, string>): NodeStats {
  const keyspace: NodeStats['keyspace'] = {};
  for (const [k, v] of Object.entries(info)) {
    if (!/^db\d+$/.test(k)) continue;
    const f = Object.fromEntries(v.split(',').map((kv) => kv.split('=') as [string, string]));
    keyspace[k] = { keys: num(f.keys), expires: num(f.expires) };
  }
  return {
    node,
    hits: num(info.keyspace_hits),
    misses: num(info.keyspace_misses),
    usedMemory: num(info.used_memory),
    peakMemory: num(info.used_memory_peak),
    evictedKeys: num(info.evicted_keys),
    expiredKeys: num(info.expired_keys),
    opsPerSec: num(info.instantaneous_ops_per_sec),
    keyspace,
  };
}

export function hitRate(hits: number, misses: number): number | null {
  return hits + misses === 0 ? null : hits / (hits + misses);
}

export async function readStats(masters: RedisNode[]): Promise<CacheStats> {
  const nodes = await Promise.all(masters.map(async (m) => nodeStats(m.label, await m.info())));
  const sum = (f: (n: NodeStats) => number) => nodes.reduce((a, n) => a + f(n), 0);
  const keyspace: NodeStats['keyspace'] = {};
  for (const n of nodes) {
    for (const [db, v] of Object.entries(n.keyspace)) {
      const t = (keyspace[db] ??= { keys: 0, expires: 0 });
      t.keys += v.keys;
      t.expires += v.expires;
    }
  }
  const hits = sum((n) => n.hits);
  const misses = sum((n) => n.misses);
  return {
    hits,
    misses,
    hitRate: hitRate(hits, misses),
    usedMemory: sum((n) => n.usedMemory),
    peakMemory: sum((n) => n.peakMemory),
    evictedKeys: sum((n) => n.evictedKeys),
    expiredKeys: sum((n) => n.expiredKeys),
    opsPerSec: sum((n) => n.opsPerSec),
    keyspace,
    nodes,
  };
}

export function formatRate(rate: number | null): string {
  return rate === null ? 'n/a' : `${(rate * 100).toFixed(1)}%`;
}
