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

/**
 * Progress of a long pass: an updating line on a terminal (count, share of the total, rate), and
 * otherwise a log line every few seconds so a log file shows the run is alive without flooding it.
 */
export class Progress {
  private done = 0;
  private readonly t0 = performance.now();
  private last = 0;
  private readonly tty: boolean;

  constructor(
    private readonly ctx: StepContext<unknown>,
    private readonly verb: string,
    private readonly total?: number,
  ) {
    this.tty = ctx.reporter.canShowLive;
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
    const of = this.total ? ` of ${formatInt(this.total)} (${Math.min(100, Math.floor((this.done / this.total) * 100))}%)` : '';
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
