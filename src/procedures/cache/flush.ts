import { lockTargets } from '../../core/lock.js';
import type { RedisNode } from '../../clients/index.js';
import { StepError, UsageError, errorMessage } from '../../core/errors.js';
import { defineProcedure, type StepContext } from '../../core/procedure.js';
import { formatDuration } from '../../core/duration.js';
import { table } from '../../core/table.js';
import { formatInt } from '../../core/format.js';
import { shellQuote } from '../../core/shell.js';
import { redisCli } from './redis-stats.js';
import { PartialPassError, Progress, readCounters, scanPass, undisturbed } from './scan.js';

export interface CacheFlushParams {
  pattern?: string;
  all?: boolean;
}

interface CountData {
  pattern: string;
  matched: number;
  perNode: Array<{ node: string; n: number }>;
}

interface UnlinkData {
  pattern: string;
  matched: number;
  deleted: number;
  durationMs: number;
  keysPerSecond: number;
  /** No other write happened on any master during the pass (see verify). */
  undisturbed: boolean;
}

interface VerifyData {
  remaining: number;
  method: 'write counter' | 'scan';
}

interface FlushAllData {
  matched: number;
  deleted: number;
}

/**
 * Refuses patterns that mean "everything" (use --all, behind its severe gate) and globs Redis
 * would read differently than the operator meant (a lone trailing backslash, an unclosed class).
 */
export function checkPattern(p: string): string {
  const hint = 'to delete every key in the database use --all (FLUSHDB ASYNC behind a typed confirmation)';
  if (p.trim() === '') throw new UsageError('--pattern must not be empty', hint);
  if (/^\*+$/.test(p)) throw new UsageError(`--pattern ${shellQuote(p)} matches every key`, hint);
  if (/[\u0000-\u001f\u007f]/.test(p)) throw new UsageError('--pattern contains a control character', 'quote the pattern, e.g. --pattern \'user:*\'');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '\\') {
      if (i === p.length - 1) throw new UsageError(`--pattern ${shellQuote(p)} ends with a lone backslash`, 'escape a literal backslash as \\\\');
      i++;
    } else if (p[i] === '[') {
      let j = i + 1;
      if (p[j] === '^') j++;
      const start = j;
      while (j < p.length && p[j] !== ']') j += p[j] === '\\' ? 2 : 1;
      if (j >= p.length) throw new UsageError(`--pattern ${shellQuote(p)} has an unclosed [`, 'close the character class, or escape a literal [ as \\[');
      if (j === start) throw new UsageError(`--pattern ${shellQuote(p)} has an empty []`, 'list characters inside [ ], e.g. user:[0-9]*');
      i = j;
    }
  }
  return p;
}

async function masters(ctx: StepContext<CacheFlushParams>): Promise<{ nodes: RedisNode[]; lanes: number; target: string }> {
  const client = await ctx.clients.redis();
  return { nodes: client.masters(), lanes: client.scanLanes, target: client.cluster ? `${client.target} (${client.masters().length} masters)` : `db ${client.db} at ${client.target.replace(/\/\d+$/, '')}` };
}

async function count(ctx: StepContext<CacheFlushParams>, pattern: string): Promise<CountData> {
  const { nodes, lanes } = await masters(ctx);
  const progress = new Progress(ctx as StepContext<unknown>, 'counted', undefined);
  try {
    const r = await scanPass(nodes, 'count', pattern, { signal: ctx.signal, onBatch: (n) => progress.add(n), lanes });
    return { pattern, matched: r.n, perNode: r.perNode };
  } catch (err) {
    throw err instanceof PartialPassError ? err.reason : err;
  } finally {
    progress.end();
  }
}

export default defineProcedure<CacheFlushParams>({
  name: 'cache flush',
  summary: 'Delete the keys matching a pattern (streamed SCAN + UNLINK), or the whole database with --all',
  seedFixes: [
    '`redis-cli --scan | xargs redis-cli DEL` starts a redis-cli per few thousand keys, sends every key over the wire twice and breaks on keys with spaces; here each server call scans and unlinks in Lua, bounded to ~2 ms, so keys never leave the server and nothing blocks it for long.',
    'The seed deletes without saying how many keys match; the count is shown first, in the plan and in --dry-run, and the deletion is gated.',
    'A bare `*` (or an empty pattern) is refused: deleting everything is `--all`, a FLUSHDB ASYNC behind a typed confirmation, where the seed ran an unguarded FLUSHDB.',
    'UNLINK frees memory in the background where DEL blocks on big values; the flush scans every master of a cluster, which the seed never did.',
    'It verifies that no key matches afterwards, and a dropped connection stops it with the count deleted so far (running it again finishes the job).',
  ],
  params: [
    { name: 'pattern', flag: '--pattern <glob>', description: "glob of the keys to delete, e.g. 'user:*' (for every key, use --all)", type: 'string' },
    { name: 'all', flag: '--all', description: 'delete every key of the database (FLUSHDB ASYNC, typed confirmation)', type: 'boolean' },
  ],
  examples: [['--pattern', 'user:*'], ['--pattern', 'session:*', '--yes'], ['--all']],
  requires: ['redis'],
  locks: (_p, env) => [lockTargets.redis(env)],
  validate(p) {
    if (p.pattern !== undefined && p.all) throw new UsageError('--pattern and --all cannot be combined', 'use --pattern to delete some keys, or --all for every key');
    if (p.pattern === undefined && !p.all) throw new UsageError('cache flush needs --pattern <glob> or --all', "e.g. runbook cache flush --pattern 'user:*'");
    if (p.pattern !== undefined) checkPattern(p.pattern);
  },
  steps: [
    {
      id: 'count',
      title: 'Count the keys matching the pattern',
      why: 'How many keys would go is shown before anything is deleted (the seed never said); SCAN in ~2 ms server calls, never KEYS.',
      risk: 'read',
      when: (p) => p.pattern !== undefined,
      equivalent: (p, env) => `${redisCli(env)} --scan --pattern ${shellQuote(p.pattern ?? '')} | wc -l`,
      run: (ctx) => count(ctx, ctx.params.pattern!),
    },
    {
      id: 'unlink',
      title: 'Delete the matching keys (SCAN + UNLINK)',
      why: 'Each server call runs SCAN and UNLINK together in Lua for about 2 ms, so no key list is ever held in memory, keys never cross the network, and other clients wait at most that long.',
      risk: 'destructive',
      when: (p) => p.pattern !== undefined,
      equivalent: (p, env) => `${redisCli(env)} --scan --pattern ${shellQuote(p.pattern ?? '')} | xargs -r -d '\\n' -n 500 ${redisCli(env)} UNLINK`,
      async plan(ctx) {
        const c = ctx.state.count as CountData;
        if (c.matched === 0) return [];
        const { target } = await masters(ctx);
        return [{ action: 'delete', target: `keys matching ${shellQuote(c.pattern)} in ${target}`, before: `${formatInt(c.matched)} keys`, after: '0 keys' }];
      },
      async run(ctx): Promise<UnlinkData> {
        const pattern = ctx.params.pattern!;
        const matched = (ctx.state.count as CountData).matched;
        const { nodes, lanes } = await masters(ctx);
        const before = await Promise.all(nodes.map(readCounters));
        const progress = new Progress(ctx as StepContext<unknown>, 'deleted', matched);
        const t0 = performance.now();
        let perNode: Array<{ node: string; n: number }>;
        try {
          perNode = (await scanPass(nodes, 'unlink', pattern, { signal: ctx.signal, onBatch: (n) => progress.add(n), lanes })).perNode;
        } catch (err) {
          progress.end();
          const done = err instanceof PartialPassError ? err.done : progress.count;
          const reason = err instanceof PartialPassError ? err.reason : err;
          if (ctx.signal.aborted) {
            ctx.reporter.warn(`stopped after deleting ${formatInt(done)} of ${formatInt(matched)} matching keys; run the same command again to finish`);
            throw reason;
          }
          throw new StepError(
            `stopped after deleting ${formatInt(done)} of ${formatInt(matched)} matching keys: ${errorMessage(reason)}`,
            'run the same command again to delete the rest (it counts again first)',
            reason,
          );
        }
        progress.end();
        const durationMs = performance.now() - t0;
        const after = await Promise.all(nodes.map(readCounters));
        const deleted = perNode.reduce((a, x) => a + x.n, 0);
        const quiet = nodes.every((_, i) => undisturbed(before[i], after[i], perNode[i].n));
        ctx.log(`deleted ${formatInt(deleted)} keys in ${formatDuration(durationMs)} (${formatInt(Math.round(deleted / Math.max(durationMs / 1000, 0.001)))} keys/s)`);
        return { pattern, matched, deleted, durationMs: Math.round(durationMs), keysPerSecond: Math.round(deleted / Math.max(durationMs / 1000, 0.001)), undisturbed: quiet };
      },
    },
    {
      id: 'verify',
      title: 'Verify that no key matches any more',
      why: 'Proves the result: when the server counted no write but ours during the pass, SCAN’s full-iteration guarantee means none is left; otherwise it scans again.',
      risk: 'read',
      followsWrite: true,
      when: (p) => p.pattern !== undefined,
      equivalent: (p, env) => `${redisCli(env)} --scan --pattern ${shellQuote(p.pattern ?? '')} | wc -l   # expect 0`,
      async plan(ctx) {
        return [{ action: 'check that no key matches', target: shellQuote(ctx.params.pattern ?? '') }];
      },
      async run(ctx): Promise<VerifyData> {
        const u = ctx.state.unlink as UnlinkData | undefined;
        if (u?.undisturbed) {
          ctx.log('no other client wrote during the pass (server write counter): nothing can match any more');
          return { remaining: 0, method: 'write counter' };
        }
        const c = await count(ctx, ctx.params.pattern!);
        if (c.matched > 0) {
          ctx.reporter.warn(`${formatInt(c.matched)} keys match ${shellQuote(ctx.params.pattern!)} again: written since the flush began (the application is refilling the cache); run again to remove them`);
        }
        return { remaining: c.matched, method: 'scan' };
      },
    },
    {
      id: 'size',
      title: 'Count every key in the database',
      why: 'FLUSHDB empties the whole database: how many keys that is, is shown before the typed confirmation.',
      risk: 'read',
      when: (p) => Boolean(p.all),
      equivalent: (_p, env) => `${redisCli(env)} DBSIZE`,
      async run(ctx) {
        const { nodes } = await masters(ctx);
        const sizes = await Promise.all(nodes.map(async (m) => ({ node: m.label, n: await m.dbsize() })));
        return { keys: sizes.reduce((a, s) => a + s.n, 0), perNode: sizes };
      },
    },
    {
      id: 'flushdb',
      title: 'Empty the whole database (FLUSHDB ASYNC)',
      why: 'ASYNC frees memory in a background thread, so the server keeps answering; the seed ran a plain FLUSHDB with no guard at all.',
      risk: 'destructive',
      severe: true,
      when: (p) => Boolean(p.all),
      equivalent: (_p, env) => `${redisCli(env)} FLUSHDB ASYNC`,
      async plan(ctx) {
        const keys = (ctx.state.size as { keys: number }).keys;
        if (keys === 0) return [];
        const { target } = await masters(ctx);
        return [{ action: 'FLUSHDB ASYNC', target, before: `${formatInt(keys)} keys`, after: '0 keys' }];
      },
      async run(ctx): Promise<FlushAllData> {
        const { nodes } = await masters(ctx);
        const matched = (ctx.state.size as { keys: number }).keys;
        const removed = await Promise.all(nodes.map((m) => m.flushAsync()));
        return { matched, deleted: removed.reduce((a, n) => a + n, 0) };
      },
    },
    {
      id: 'verify-empty',
      title: 'Verify that the database is empty',
      why: 'Confirms the flush; keys written since (the application refilling its cache) are reported, not hidden.',
      risk: 'read',
      followsWrite: true,
      when: (p) => Boolean(p.all),
      equivalent: (_p, env) => `${redisCli(env)} DBSIZE   # expect 0`,
      async run(ctx) {
        const { nodes } = await masters(ctx);
        const remaining = (await Promise.all(nodes.map((m) => m.dbsize()))).reduce((a, n) => a + n, 0);
        if (remaining > 0) ctx.reporter.warn(`${formatInt(remaining)} keys were written since the flush (the application is refilling the cache)`);
        return { remaining };
      },
    },
  ],
  render(state) {
    const u = (state.unlink ?? state.flushdb) as { matched: number; deleted: number } | undefined;
    const c = (state.count ?? state.size) as { matched?: number; keys?: number } | undefined;
    const v = (state.verify ?? state['verify-empty']) as { remaining: number } | undefined;
    const matched = u?.matched ?? c?.matched ?? c?.keys ?? 0;
    const what = state.count ? `keys matching ${shellQuote((state.count as CountData).pattern)}` : 'keys in the database';
    return (
      table(
        ['WHAT', 'MATCHED', 'DELETED', 'REMAINING'],
        [[what, formatInt(matched), formatInt(u?.deleted ?? 0), v ? formatInt(v.remaining) : '-']],
      )
    );
  },
});
