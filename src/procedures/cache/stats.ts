import { defineProcedure, stepFor } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { formatBytes, formatInt } from '../../core/format.js';
import { formatRate, readStats, redisCli, type CacheStats } from './redis-stats.js';

const stats = stepFor<Record<string, never>>()({
  id: 'stats',
  title: 'Read INFO from every master',
  why: 'One snapshot of what the cache is doing: hit rate, size, memory and evictions.',
  risk: 'read',
  equivalent: (_p, env) => `${redisCli(env)} INFO everything`,
  async run(ctx): Promise<CacheStats & { target: string }> {
    const client = await ctx.clients.redis();
    return { target: client.target, ...(await readStats(client.masters())) };
  },
});

export default defineProcedure<Record<string, never>>({
  name: 'cache stats',
  summary: 'Hit rate, keys per database, memory, evictions and ops/s of the cache',
  seedFixes: [
    '`redis-cli INFO stats | grep hit_rate` finds nothing: INFO has no hit rate. It is computed here from keyspace_hits and keyspace_misses.',
    'A cluster is summed over every master instead of showing one node.',
  ],
  params: [],
  examples: [[]],
  requires: ['redis'],
  steps: [stats],
  render(run) {
    const s = run.get(stats);
    const rows: Array<[string, string]> = [
      ['target', s.target + (s.nodes.length > 1 ? ` (${s.nodes.length} masters)` : '')],
      ['hit rate', formatRate(s.hitRate)],
      ['hits', formatInt(s.hits)],
      ['misses', formatInt(s.misses)],
      ['memory used', formatBytes(s.usedMemory)],
      ['memory peak', formatBytes(s.peakMemory)],
      ['evicted keys', formatInt(s.evictedKeys)],
      ['expired keys', formatInt(s.expiredKeys)],
      ['ops/s', formatInt(s.opsPerSec)],
    ];
    const dbs = Object.entries(s.keyspace).sort(([a], [b]) => Number(a.slice(2)) - Number(b.slice(2)));
    const keyspace = dbs.length
      ? table(
          ['DB', 'KEYS', 'WITH TTL'],
          dbs.map(([db, v]) => [db, formatInt(v.keys), formatInt(v.expires)]),
        )
      : 'no keys\n';
    return `${table(['METRIC', 'VALUE'], rows)}\n${keyspace}`;
  },
});
