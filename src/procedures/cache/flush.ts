import { lockTargets } from '../../core/lock.js';
import type { RedisNode } from '../../clients/index.js';
import { StepError, UsageError, errorMessage } from '../../core/errors.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { formatDuration } from '../../core/duration.js';
import { table } from '../../core/table.js';
import { formatInt } from '../../core/format.js';
import { shellQuote } from '../../core/shell.js';
import { redisCli } from './redis-stats.js';
import { PartialPassError, Progress, readCounters, roundEstimate, samplePass, scanPass, summarizeSample, undisturbed } from './scan.js';

export interface CacheFlushParams {
  pattern?: string;
  all?: boolean;
}

interface CountData {
  pattern: string;
  /**
   * How many keys match, when it is known before the deletion: a dry run counts them all, and so
   * does a sample that went through the whole keyspace (a small database). Null when only `estimate` is.
   */
  matched: number | null;
  /** Otherwise roughly how many, from a bounded sample; the deletion counts them exactly as it goes. */
  estimate?: {
    keys: number;
    /** Keys the sample looked at, of `of` (every master's DBSIZE). */
    sampled: number;
    of: number;
    /** A master's sample could not be scaled up (a pattern with a hash tag on a cluster): `keys` is a floor. */
    atLeast?: boolean;
  };
  /** Per master: its count, or its estimate (`estimated`). */
  perNode: Array<{ node: string; n: number; estimated?: true }>;
}

interface UnlinkData {
  pattern: string;
  /** How many keys matched: the count made before the gate, or else (an estimate was shown) the pass's own exact count. */
  matched: number;
  /** The estimate shown at the gate, when it was one. */
  estimated?: number;
  deleted: number;
  /** Keys removed on each master. */
  perNode: Array<{ node: string; n: number }>;
  durationMs: number;
  keysPerSecond: number;
  /** No other write happened on any master during the pass (see verify). */
  undisturbed: boolean;
}

interface VerifyData {
  remaining: number;
  method: 'write counter' | 'scan';
}

interface SizeData {
  keys: number;
  perNode: Array<{ node: string; n: number }>;
}

interface FlushAllData {
  matched: number;
  deleted: number;
}

interface VerifyEmptyData {
  remaining: number;
}

/**
 * Refuses patterns that mean "everything" (use --all, behind its severe gate) and globs Redis
 * would read differently than the operator meant (a lone trailing backslash, an unclosed class).
 */
export function checkPattern(p: string): string {
  const hint = 'to delete every key in the database use --all (FLUSHDB ASYNC behind a typed confirmation)';
  if (p.trim() === '') throw new UsageError('--pattern must not be empty', hint);
  if (/^\*+$/.test(p)) throw new UsageError(`--pattern ${shellQuote(p)} matches every key`, hint);
  if (/[\u0000-\u001f\u007f]/.test(p)) throw new UsageError('--pattern contains a control character', "quote the pattern, e.g. --pattern 'user:*'");
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
  return {
    nodes: client.masters(),
    lanes: client.scanLanes,
    target: client.cluster ? `${client.target} (${client.masters().length} masters)` : `db ${client.db} at ${client.target.replace(/\/\d+$/, '')}`,
  };
}

async function countKeys(ctx: StepContext<CacheFlushParams>, pattern: string): Promise<CountData & { matched: number }> {
  const { nodes, lanes } = await masters(ctx);
  const progress = new Progress(ctx, 'counted', undefined);
  try {
    const r = await scanPass(nodes, 'count', pattern, { signal: ctx.signal, onBatch: (n) => progress.add(n), lanes });
    return { pattern, matched: r.n, perNode: r.perNode };
  } catch (err) {
    throw err instanceof PartialPassError ? err.reason : err;
  } finally {
    progress.end();
  }
}

/**
 * Before a real deletion: a bounded sample of each master (a few ms of server time), exact when it
 * goes through the whole keyspace, else an estimate. The deletion is then the only full pass.
 */
async function sampleKeys(ctx: StepContext<CacheFlushParams>, pattern: string): Promise<CountData> {
  const { nodes } = await masters(ctx);
  const s = summarizeSample(await samplePass(nodes, pattern, { signal: ctx.signal }));
  if (s.exact !== undefined) return { pattern, matched: s.exact, perNode: s.perNode };
  const estimate: NonNullable<CountData['estimate']> = { keys: s.estimate!, sampled: s.sampled, of: s.of, ...(s.atLeast ? { atLeast: true } : {}) };
  return { pattern, matched: null, estimate, perNode: s.perNode };
}

/** What the count step found, in words: "1,234 keys", or an estimate that says it is one. */
function describeCount(c: CountData): string {
  if (c.matched !== null || !c.estimate) return `${formatInt(c.matched ?? 0)} keys`;
  const e = c.estimate;
  const sample = `a sample of ${formatInt(e.sampled)} of ${formatInt(e.of)} keys`;
  if (e.atLeast) return `at least ${formatInt(e.keys)} keys (estimate: ${sample} could not be scaled up to the whole keyspace)`;
  // None seen: with that many keys looked at, more than ~3/sampled of them matching would rarely go unseen.
  if (e.keys === 0) return `fewer than about ${formatInt(roundEstimate((3 * e.of) / Math.max(e.sampled, 1)))} keys (estimate: none in ${sample})`;
  return `about ${formatInt(roundEstimate(e.keys))} keys (estimate from ${sample})`;
}

const step = stepFor<CacheFlushParams>();

const count = step({
  id: 'count',
  title: 'Count the keys matching the pattern',
  why:
    'How many keys would go is shown before anything is deleted (the seed never said): a dry run counts them all; a real run looks at ' +
    'no more than 10,000 keys per master, an exact count if that is all of them, else an estimate labelled as one, so the deletion is the ' +
    'only full pass (it counts exactly as it goes). SCAN in ~2 ms server calls, never KEYS.',
  risk: 'read',
  when: (p) => p.pattern !== undefined,
  equivalent: (p, env) => `${redisCli(env)} --scan --pattern ${shellQuote(p.pattern ?? '')} | wc -l`,
  run: (ctx) => (ctx.dryRun === 'off' ? sampleKeys(ctx, ctx.params.pattern!) : countKeys(ctx, ctx.params.pattern!)),
});

const unlink = step({
  id: 'unlink',
  title: 'Delete the matching keys (SCAN + UNLINK)',
  why: 'Each server call runs SCAN and UNLINK together in Lua for about 2 ms, so no key list is ever held in memory, keys never cross the network, and other clients wait at most that long; a standalone server has several calls queued (never idle between them), a cluster’s masters all work at once, and the keys are counted as they go.',
  risk: 'destructive',
  when: (p) => p.pattern !== undefined,
  equivalent: (p, env) => `${redisCli(env)} --scan --pattern ${shellQuote(p.pattern ?? '')} | xargs -r -d '\\n' -n 500 ${redisCli(env)} UNLINK`,
  async plan(ctx) {
    const c = ctx.get(count);
    if (c.matched === 0) return [];
    const { target } = await masters(ctx);
    return [{ action: 'delete', target: `keys matching ${shellQuote(c.pattern)} in ${target}`, before: describeCount(c), after: '0 keys' }];
  },
  async run(ctx): Promise<UnlinkData> {
    const pattern = ctx.params.pattern!;
    const c = ctx.get(count);
    // Known before (a small database): that count. Else the estimate (when there is a usable one), until the pass has counted.
    const e = c.matched === null && c.estimate && c.estimate.keys > 0 && !c.estimate.atLeast ? roundEstimate(c.estimate.keys) : undefined;
    const expected = c.matched ?? e;
    const of = expected === undefined ? '' : ` of ${formatInt(expected)}`;
    const approx = e !== undefined ? ' (that total is an estimate from a sample)' : '';
    const { nodes, lanes } = await masters(ctx);
    const before = await Promise.all(nodes.map(readCounters));
    const progress = new Progress(ctx, 'deleted', expected, e !== undefined);
    const t0 = performance.now();
    let perNode: Array<{ node: string; n: number }>;
    try {
      perNode = (await scanPass(nodes, 'unlink', pattern, { signal: ctx.signal, onBatch: (n) => progress.add(n), lanes })).perNode;
    } catch (err) {
      progress.end();
      const done = err instanceof PartialPassError ? err.done : progress.count;
      const reason = err instanceof PartialPassError ? err.reason : err;
      if (ctx.signal.aborted) {
        ctx.reporter.warn(`stopped after deleting ${formatInt(done)}${of} matching keys${approx}; run the same command again to finish`);
        throw reason;
      }
      throw new StepError(
        `stopped after deleting ${formatInt(done)}${of} matching keys${approx}: ${errorMessage(reason)}`,
        'run the same command again to delete the rest (it looks again at what is left)',
        reason,
      );
    }
    progress.end();
    const durationMs = performance.now() - t0;
    const after = await Promise.all(nodes.map(readCounters));
    const deleted = perNode.reduce((a, x) => a + x.n, 0);
    const quiet = nodes.every((_, i) => undisturbed(before[i], after[i], perNode[i].n));
    const keysPerSecond = Math.round(deleted / Math.max(durationMs / 1000, 0.001));
    ctx.log(
      `deleted ${formatInt(deleted)} keys in ${formatDuration(durationMs)} (${formatInt(keysPerSecond)} keys/s)${c.matched === null ? `: the exact count (the estimate was ${describeCount(c).replace(/ \(.*$/, '')})` : ''}`,
    );
    return {
      pattern,
      matched: c.matched ?? deleted,
      ...(c.matched === null && c.estimate ? { estimated: c.estimate.keys } : {}),
      deleted,
      perNode,
      durationMs: Math.round(durationMs),
      keysPerSecond,
      undisturbed: quiet,
    };
  },
  postcondition: {
    describe: 'no key matches the pattern',
    // Deleting what matches again is exactly what was asked (keys written since included), and gated
    // again: safe. A bounded sample looks; the deletion, if it runs, is the full pass.
    async check(ctx, data) {
      const s = await sampleKeys(ctx, data.pattern);
      const left = s.matched ?? s.estimate?.keys ?? 0;
      return left === 0 ? { holds: true } : { holds: false, found: `${describeCount(s)} match ${shellQuote(data.pattern)} again` };
    },
  },
});

const verify = step({
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
    const u = ctx.find(unlink);
    if (u?.undisturbed) {
      ctx.log('no other client wrote during the pass (server write counter): nothing can match any more');
      return { remaining: 0, method: 'write counter' };
    }
    const c = await countKeys(ctx, ctx.params.pattern!);
    if (c.matched > 0) {
      ctx.reporter.warn(
        `${formatInt(c.matched)} keys match ${shellQuote(ctx.params.pattern!)} again: written since the flush began (the application is refilling the cache); run again to remove them`,
      );
    }
    return { remaining: c.matched, method: 'scan' };
  },
});

const size = step({
  id: 'size',
  title: 'Count every key in the database',
  why: 'FLUSHDB empties the whole database: how many keys that is, is shown before the typed confirmation.',
  risk: 'read',
  when: (p) => Boolean(p.all),
  equivalent: (_p, env) => `${redisCli(env)} DBSIZE`,
  async run(ctx): Promise<SizeData> {
    const { nodes } = await masters(ctx);
    const sizes = await Promise.all(nodes.map(async (m) => ({ node: m.label, n: await m.dbsize() })));
    return { keys: sizes.reduce((a, s) => a + s.n, 0), perNode: sizes };
  },
});

const flushdb = step({
  id: 'flushdb',
  title: 'Empty the whole database (FLUSHDB ASYNC)',
  why: 'ASYNC frees memory in a background thread, so the server keeps answering; the seed ran a plain FLUSHDB with no guard at all.',
  risk: 'destructive',
  severe: true,
  when: (p) => Boolean(p.all),
  equivalent: (_p, env) => `${redisCli(env)} FLUSHDB ASYNC`,
  async plan(ctx) {
    const keys = ctx.get(size).keys;
    if (keys === 0) return [];
    const { target } = await masters(ctx);
    return [{ action: 'FLUSHDB ASYNC', target, before: `${formatInt(keys)} keys`, after: '0 keys' }];
  },
  async run(ctx): Promise<FlushAllData> {
    const { nodes } = await masters(ctx);
    const matched = ctx.get(size).keys;
    const removed = await Promise.all(nodes.map((m) => m.flushAsync()));
    return { matched, deleted: removed.reduce((a, n) => a + n, 0) };
  },
  postcondition: {
    describe: 'the database holds fewer keys than before the flush',
    // Refilled past its size before the flush: it no longer looks flushed. FLUSHDB again empties it
    // again, as asked, behind the same typed confirmation: safe for a cache.
    async check(ctx, data) {
      const { nodes } = await masters(ctx);
      const keys = (await Promise.all(nodes.map((m) => m.dbsize()))).reduce((a, n) => a + n, 0);
      return keys === 0 || keys < data.matched
        ? { holds: true }
        : { holds: false, found: `it holds ${formatInt(keys)} keys, ${formatInt(data.matched)} were there before the flush` };
    },
  },
});

const verifyEmpty = step({
  id: 'verify-empty',
  title: 'Verify that the database is empty',
  why: 'Confirms the flush; keys written since (the application refilling its cache) are reported, not hidden.',
  risk: 'read',
  followsWrite: true,
  when: (p) => Boolean(p.all),
  equivalent: (_p, env) => `${redisCli(env)} DBSIZE   # expect 0`,
  async run(ctx): Promise<VerifyEmptyData> {
    const { nodes } = await masters(ctx);
    const remaining = (await Promise.all(nodes.map((m) => m.dbsize()))).reduce((a, n) => a + n, 0);
    if (remaining > 0) ctx.reporter.warn(`${formatInt(remaining)} keys were written since the flush (the application is refilling the cache)`);
    return { remaining };
  },
});

export default defineProcedure<CacheFlushParams>({
  name: 'cache flush',
  summary: 'Delete the keys matching a pattern (streamed SCAN + UNLINK), or the whole database with --all',
  seedFixes: [
    '`redis-cli --scan | xargs redis-cli DEL` starts a redis-cli per few thousand keys, sends every key over the wire twice and breaks on keys with spaces; here each server call scans and unlinks in Lua, bounded to ~2 ms, so keys never leave the server and nothing blocks it for long.',
    'The seed deletes without saying how many keys match; here it is shown first and the deletion is gated: counted exactly in --dry-run (and for a small database), otherwise estimated from a bounded sample and labelled as an estimate, so the deletion is the only full pass; the exact count deleted is reported at the end.',
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
    if (p.pattern !== undefined && p.all)
      throw new UsageError('--pattern and --all cannot be combined', 'use --pattern to delete some keys, or --all for every key');
    if (p.pattern === undefined && !p.all) throw new UsageError('cache flush needs --pattern <glob> or --all', "e.g. runbook cache flush --pattern 'user:*'");
    if (p.pattern !== undefined) checkPattern(p.pattern);
  },
  steps: [count, unlink, verify, size, flushdb, verifyEmpty],
  render(run) {
    const u = run.find(unlink) ?? run.find(flushdb);
    const c = run.find(count);
    const v = run.find(verify) ?? run.find(verifyEmpty);
    const matched = u?.matched ?? c?.matched ?? run.find(size)?.keys;
    const what = c ? `keys matching ${shellQuote(c.pattern)}` : 'keys in the database';
    // Only an estimate when the run stopped before the deletion counted them (e.g. declined).
    const shown = matched !== null && matched !== undefined ? formatInt(matched) : c?.estimate ? `~${formatInt(roundEstimate(c.estimate.keys))}` : '0';
    return table(['WHAT', 'MATCHED', 'DELETED', 'REMAINING'], [[what, shown, formatInt(u?.deleted ?? 0), v ? formatInt(v.remaining) : '-']]);
  },
});
