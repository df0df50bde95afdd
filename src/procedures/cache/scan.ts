import type { RedisNode } from '../../clients/index.js';
import type { ScanLane } from '../../clients/redis.js';
import { errorMessage } from '../../core/errors.js';
import type { StepContext } from '../../core/procedure.js';
import { formatInt } from '../../core/format.js';

/**
 * How long one server call may run (µs). The server runs one command at a time, so this is the
 * longest any other client waits behind us; 2 ms keeps the round trip under ~5% of each call.
 */
export const BATCH_BUDGET_US = 2000;

export interface PassResult {
  /** Keys counted (count) or removed (unlink), over every master. */
  n: number;
  perNode: Array<{ node: string; n: number }>;
}

/** A pass stopped part-way (connection dropped, server error, interrupt): `done` says how far it got. */
export class PartialPassError extends Error {
  constructor(
    readonly done: number,
    readonly reason: unknown,
  ) {
    super(errorMessage(reason));
    this.name = 'PartialPassError';
  }
}

/** Reverses the low `bits` bits of n. */
function rev(n: number, bits: number): number {
  let r = 0;
  for (let i = 0; i < bits; i++) r |= ((n >> i) & 1) << (bits - 1 - i);
  return r;
}

/** One share of a SCAN iteration: where it starts, and what the server needs to keep to it. */
export interface Lane extends ScanLane {
  start: string;
}

/**
 * Splits one SCAN iteration into `count` (a power of two) lanes whose batches can be in flight at
 * once, so the server never idles waiting for our round trip. SCAN visits buckets in reverse-binary
 * order of the cursor, so the cursor's low bits (reversed) say which share of the iteration it is
 * in, whatever the table size: lane j starts at the first cursor of share j and ends where share
 * j+1 starts. The script redoes the one call that runs past a lane's end bucket by bucket, so no
 * key is counted twice, and SCAN's guarantee holds per lane.
 */
export function lanes(count: number): Lane[] {
  const k = Math.max(0, Math.round(Math.log2(count)));
  const n = 1 << k;
  return Array.from({ length: n }, (_, j) => ({
    k: n,
    low: rev(j, k),
    start: String(rev(j, k)),
    boundary: j === n - 1 ? '0' : String(rev(j + 1, k)),
  }));
}

function inLane(lane: Lane, cursor: string): boolean {
  return cursor !== '0' && (lane.k === 1 || Number(BigInt(cursor) % BigInt(lane.k)) === lane.low);
}

/**
 * One full SCAN iteration over every master in parallel, each master split into `lanes`.
 * Keys never reach this process: each call returns a count.
 */
export async function scanPass(
  masters: RedisNode[],
  op: 'count' | 'unlink',
  pattern: string,
  opts: { signal: AbortSignal; budgetUs?: number; onBatch?(n: number): void; lanes?: number },
): Promise<PassResult> {
  const perNode = masters.map((m) => ({ node: m.label, n: 0 }));
  const shares = lanes(opts.lanes ?? 1);
  let stop = false;
  const loops = masters.flatMap((m, i) =>
    shares.map(async (lane) => {
      let cursor = lane.start;
      try {
        do {
          if (stop) return;
          if (opts.signal.aborted) throw opts.signal.reason;
          const b = await m.scanBatch(op, cursor, pattern, opts.budgetUs ?? BATCH_BUDGET_US, lane);
          cursor = b.cursor;
          perNode[i].n += b.n;
          opts.onBatch?.(b.n);
        } while (inLane(lane, cursor));
      } catch (err) {
        stop = true;
        throw err;
      }
    }),
  );
  const results = await Promise.allSettled(loops);
  const n = perNode.reduce((a, x) => a + x.n, 0);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw new PartialPassError(n, failed.reason);
  return { n, perNode };
}

/** Keys a sample looks at on each master, at most: 1% of a million-key master, a few ms of server time. */
export const SAMPLE_KEYS = 10_000;
/**
 * Server calls a sample makes on each master, at most: each is bounded by BATCH_BUDGET_US, and
 * one or two usually see SAMPLE_KEYS keys; this only bounds a table of mostly empty buckets.
 */
export const SAMPLE_CALLS = 50;

/** What a bounded sample found on one master. */
export interface NodeSample {
  node: string;
  /** Matching keys found in the sample. */
  matched: number;
  /** Keys (of any name) in the buckets sampled; -1 when unknown. */
  seen: number;
  /** The master's DBSIZE when the sample began. */
  dbsize: number;
  /** The sample went through the whole keyspace: `matched` is an exact count. */
  complete: boolean;
}

/**
 * How many keys match, from a sample of at most SAMPLE_KEYS keys per master (every master in
 * parallel), starting at cursor 0: a master whose SCAN comes back to 0 within it is counted
 * exactly (a small database costs no estimate); on the others the share of matching keys seen is
 * scaled by DBSIZE. SCAN visits buckets in reverse-binary order and keys land in buckets by hash,
 * so the first buckets are a fair sample of names (unless keys share a hash tag).
 */
export async function samplePass(
  masters: RedisNode[],
  pattern: string,
  opts: { signal: AbortSignal; budgetUs?: number; keys?: number; calls?: number },
): Promise<NodeSample[]> {
  const limit = opts.keys ?? SAMPLE_KEYS;
  return Promise.all(
    masters.map(async (m) => {
      const dbsize = await m.dbsize();
      let cursor = '0';
      let matched = 0;
      let seen = 0;
      for (let calls = 0; calls < (opts.calls ?? SAMPLE_CALLS); calls++) {
        if (opts.signal.aborted) throw opts.signal.reason;
        const b = await m.sampleBatch(cursor, pattern, opts.budgetUs ?? BATCH_BUDGET_US, seen >= 0 ? Math.max(1, limit - seen) : limit);
        matched += b.n;
        seen = seen < 0 || b.seen < 0 ? -1 : seen + b.seen;
        cursor = b.cursor;
        if (cursor === '0' || (seen >= 0 && seen >= limit)) break;
      }
      return { node: m.label, matched, seen, dbsize, complete: cursor === '0' };
    }),
  );
}

/** The count, or the estimate, that samples add up to. */
export interface SampleSummary {
  /** Every master was counted exactly: the number of matching keys. */
  exact?: number;
  /** Otherwise: the estimate, from `sampled` keys of `of` (the masters' DBSIZE summed). */
  estimate?: number;
  sampled: number;
  of: number;
  /** Some master's sample could not be scaled up (see NodeSample.seen): `estimate` is only a floor. */
  atLeast?: boolean;
  perNode: Array<{ node: string; n: number; estimated?: true }>;
}

export function summarizeSample(samples: NodeSample[]): SampleSummary {
  let total = 0;
  let sampled = 0;
  let atLeast = false;
  const perNode = samples.map((s): SampleSummary['perNode'][number] => {
    if (s.complete) {
      total += s.matched;
      sampled += Math.max(s.seen, s.matched);
      return { node: s.node, n: s.matched };
    }
    let n = s.matched;
    if (s.seen > 0) n = Math.max(s.matched, Math.round((s.matched / s.seen) * s.dbsize));
    else atLeast = true;
    total += n;
    sampled += Math.max(s.seen, s.matched, 0);
    return { node: s.node, n, estimated: true };
  });
  const of = samples.reduce((a, s) => a + s.dbsize, 0);
  if (samples.every((s) => s.complete)) return { exact: total, sampled, of, perNode };
  return { estimate: total, sampled, of, ...(atLeast ? { atLeast } : {}), perNode };
}

/** An estimate as an operator reads it: two significant digits (it is no more precise than that). */
export function roundEstimate(n: number): number {
  return n < 100 ? Math.round(n) : Number(n.toPrecision(2));
}

/**
 * Progress of a long pass: an updating line on a terminal (count, share of the total, rate), and
 * otherwise a log line every few seconds so a log file shows the run is alive without flooding it.
 */
export class Progress {
  private done = 0;
  private readonly t0 = performance.now();
  /** When the last line was shown: on a terminal the first batch shows at once; in a log, the first line comes after 3 s. */
  private last: number;
  private readonly tty: boolean;

  constructor(
    private readonly ctx: Pick<StepContext, 'reporter' | 'log'>,
    private readonly verb: string,
    private readonly total?: number,
    /** `total` is an estimate: shown as "of about …". */
    private readonly approx = false,
  ) {
    this.tty = ctx.reporter.canShowLive;
    // (From 0, a log would get a line on the first batch of any process up for more than 3 s.)
    this.last = this.tty ? 0 : this.t0;
  }

  get count(): number {
    return this.done;
  }

  rate(): number {
    const s = (performance.now() - this.t0) / 1000;
    return s > 0 ? this.done / s : 0;
  }

  add(n: number): void {
    this.done += n;
    const now = performance.now();
    if (now - this.last < (this.tty ? 100 : 3000)) return;
    this.last = now;
    const of = this.total ? ` of ${this.approx ? 'about ' : ''}${formatInt(this.total)} (${Math.min(100, Math.floor((this.done / this.total) * 100))}%)` : '';
    const line = `${this.verb} ${formatInt(this.done)}${of} keys · ${formatInt(Math.round(this.rate()))} keys/s`;
    if (this.tty) this.ctx.reporter.liveLine(line);
    else this.ctx.log(line);
  }

  /** Clears the terminal line so the step's result line starts clean. */
  end(): void {
    this.ctx.reporter.endLive();
  }
}

/** Write counter and size of one master, to prove nobody else wrote while we deleted. */
export interface Counters {
  node: string;
  dirty: number;
  dbsize: number;
  lastSave: string;
}

export async function readCounters(m: RedisNode): Promise<Counters | null> {
  try {
    const [info, dbsize] = await Promise.all([m.info('persistence'), m.dbsize()]);
    const dirty = Number(info.rdb_changes_since_last_save);
    if (!Number.isFinite(dirty)) return null;
    return { node: m.label, dirty, dbsize, lastSave: info.rdb_last_save_time ?? '' };
  } catch {
    return null;
  }
}

/**
 * True when, on this master, the only writes between `before` and `after` were our `deleted`
 * removals (write counter and DBSIZE both moved by exactly that, no save reset the counter).
 * SCAN returns every key present for a whole iteration, so then no matching key can be left.
 */
export function undisturbed(before: Counters | null, after: Counters | null, deleted: number): boolean {
  if (!before || !after) return false;
  return after.dirty - before.dirty === deleted && before.dbsize - after.dbsize === deleted && before.lastSave === after.lastSave;
}
