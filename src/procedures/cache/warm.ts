import { basename } from 'node:path';
import { parseDuration, formatDuration } from '../../core/duration.js';
import { StepError, UsageError, errorMessage } from '../../core/errors.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { shellQuote } from '../../core/shell.js';
import { formatRate, hitRate, readStats, redisCli } from './redis-stats.js';

export interface CacheWarmParams {
  type: string;
  parallel: number;
  warmerTimeout?: number;
}

interface HitSnapshot {
  hits: number;
  misses: number;
  hitRate: number | null;
}

/** How one warmer ended. */
export interface WarmerResult {
  command: string;
  exitCode: number;
  timedOut: boolean;
  durationMs: number;
  error?: string;
}

interface WarmData {
  type: string;
  results: WarmerResult[];
}

function warmers(ctx: { params: CacheWarmParams; env: StepContext<CacheWarmParams>['env'] }): string[][] {
  return ctx.env.config.cache?.warmers[ctx.params.type] ?? [];
}

const display = (argv: string[]) => argv.map(shellQuote).join(' ');

/** A short, unique prefix per command for its output lines. */
function labels(commands: string[][]): string[] {
  // The program and as many of the last arguments as fit: that is where commands usually differ.
  const short = commands.map((argv) => {
    const words = [basename(argv[0]), ...argv.slice(1)];
    if (words.join(' ').length <= 48) return words.join(' ');
    const tail: string[] = [];
    for (let i = words.length - 1; i > 0 && [words[0], '…', words[i], ...tail].join(' ').length <= 48; i--) tail.unshift(words[i]);
    const s = words.join(' ');
    return tail.length ? [words[0], '…', ...tail].join(' ') : `${s.slice(0, 47)}…`;
  });
  return short.map((s, i) => (short.indexOf(s) !== short.lastIndexOf(s) ? `${i + 1}:${s}` : s));
}

async function snapshot(ctx: StepContext<CacheWarmParams>): Promise<HitSnapshot> {
  const client = await ctx.clients.redis();
  const s = await readStats(client.masters());
  return { hits: s.hits, misses: s.misses, hitRate: s.hitRate };
}

/** Runs `items` through `work` with at most `limit` in flight, keeping the input order in the results. */
export async function boundedMap<T, R>(items: T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i], i);
    }
  });
  await Promise.all(lanes);
  return out;
}

const step = stepFor<CacheWarmParams>();

const before = step({
  id: 'before',
  title: 'Read the hit rate before warming',
  why: 'The hit rate is the measure of whether warming helped.',
  risk: 'read',
  equivalent: (_p, env) => `${redisCli(env)} INFO stats | grep -E 'keyspace_(hits|misses)'`,
  run: snapshot,
});

// No postcondition: a cache keeps no record of having been warmed; the warmers' exit codes (journaled) are what "done" means, and
// resume does not run long warmers twice on their word.
const warm = step({
  id: 'warm',
  title: 'Run the warmers',
  why: 'Fills the cache ahead of traffic; bounded parallelism keeps the warmers from overloading the database behind the cache.',
  risk: 'write',
  equivalent: (p, env) => (env.config.cache?.warmers[p.type] ?? []).map(display).join(' & ') + (p.parallel > 1 ? ` (at most ${p.parallel} at once)` : ''),
  async plan(ctx) {
    return warmers(ctx).map((argv) => ({ action: 'run warmer', target: display(argv) }));
  },
  async run(ctx): Promise<WarmData> {
    const commands = warmers(ctx);
    const names = labels(commands);
    const cache = ctx.env.config.cache;
    const timeoutMs = ctx.params.warmerTimeout ?? parseDuration(cache?.timeout ?? '10m', 'cache.timeout');
    const processes = await ctx.clients.processes();
    const results = await boundedMap(commands, ctx.params.parallel, async (argv, i): Promise<WarmerResult> => {
      const t0 = performance.now();
      const command = display(argv);
      ctx.log(`[${names[i]}] started`);
      try {
        const r = await processes.run(argv[0], argv.slice(1), {
          cwd: cache?.cwd,
          env: ctx.io.env,
          timeoutMs,
          signal: ctx.signal,
          onLine: (line) => ctx.log(`[${names[i]}] ${line}`),
        });
        const durationMs = Math.round(performance.now() - t0);
        ctx.log(`[${names[i]}] ${r.timedOut ? `timed out after ${formatDuration(timeoutMs)}` : `exited ${r.exitCode}`} in ${formatDuration(durationMs)}`);
        return { command, exitCode: r.exitCode, timedOut: r.timedOut, durationMs };
      } catch (err) {
        ctx.log(`[${names[i]}] ${errorMessage(err)}`);
        return { command, exitCode: 127, timedOut: false, durationMs: Math.round(performance.now() - t0), error: errorMessage(err) };
      }
    });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const failed = results.filter((r) => r.exitCode !== 0);
    if (failed.length) {
      const summary = failed.map((r) => `${r.command} ${r.timedOut ? 'timed out' : r.error ? 'could not start' : `exited ${r.exitCode}`}`).join('; ');
      throw new StepError(`${failed.length} of ${results.length} warmers failed: ${summary}`, 'see the prefixed output above; the other warmers completed');
    }
    return { type: ctx.params.type, results };
  },
});

const after = step({
  id: 'after',
  title: 'Read the hit rate after warming',
  why: 'Shows whether warming moved the hit rate (the counters are cumulative since the server started).',
  risk: 'read',
  followsWrite: true,
  equivalent: (_p, env) => `${redisCli(env)} INFO stats | grep -E 'keyspace_(hits|misses)'`,
  async run(ctx) {
    const end = await snapshot(ctx);
    const start = ctx.get(before);
    const dh = end.hits - start.hits;
    const dm = end.misses - start.misses;
    ctx.log(`hit rate ${formatRate(start.hitRate)} → ${formatRate(end.hitRate)} (during warming: ${dh} hits, ${dm} misses)`);
    return { ...end, during: { hits: dh, misses: dm, hitRate: hitRate(dh, dm) } };
  },
});

export default defineProcedure<CacheWarmParams>({
  name: 'cache warm',
  summary: 'Run the configured cache warmers for a type, in parallel, and show the hit rate before and after',
  seedFixes: [
    '`./scripts/warm-cache.sh` then `tail -f logs/cache-warming.log` never says when warming ended or whether it worked; each warmer runs here with a timeout, its output is streamed with its name in front, and a non-zero exit fails the run (exit 1) with a summary of exit codes.',
    'The commands come from the environment config as argument arrays: no shell, no quoting surprises.',
    '`INFO stats | grep hit_rate` matches nothing (INFO has no such field); the hit rate is computed from keyspace_hits/misses before and after.',
  ],
  params: [
    { name: 'type', flag: '--type <name>', description: 'which warmers to run (a key of cache.warmers in the environment)', type: 'string', required: true },
    { name: 'parallel', flag: '--parallel <n>', description: 'how many warmer commands run at once', type: 'int', default: 4, min: 1, max: 64 },
    { name: 'warmerTimeout', flag: '--warmer-timeout <duration>', description: 'limit for each warmer command (default: cache.timeout)', type: 'duration' },
  ],
  examples: [['--type', 'product', '--parallel', '2']],
  requires: ['redis'],
  validate(p, env) {
    const configured = env.config.cache?.warmers ?? {};
    if (!configured[p.type]) {
      const known = Object.keys(configured);
      throw new UsageError(
        `no cache warmers of type "${p.type}" in environment "${env.name}"`,
        known.length ? `configured types: ${known.join(', ')}` : `add environments.${env.name}.cache.warmers.${p.type}: [[command, arg, …]]`,
      );
    }
  },
  steps: [before, warm, after],
  render(run) {
    const w = run.get(warm);
    const start = run.get(before);
    const end = run.get(after);
    const rows = w.results.map((r) => [r.command, r.timedOut ? 'timeout' : String(r.exitCode), formatDuration(r.durationMs)]);
    return `${table(['WARMER', 'EXIT', 'DURATION'], rows)}\nhit rate: ${formatRate(start.hitRate)} → ${formatRate(end.hitRate)}\n`;
  },
});
