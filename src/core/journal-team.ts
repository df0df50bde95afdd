import { UsageError } from './errors.js';
import { isRunId, parseEvents, runIdFloor, type JournalEvent } from './journal.js';
import { journalRun, type JournalReader, type JournalRun, type LastEffectiveOptions, type RunQuery } from './journal-reader.js';
import { sharedFailure, SharedStoreError, type SharedJournal } from './journal-share.js';

/** Where a run was read: this laptop's journal, the team's, or both (the fuller copy is the one shown). */
export type RunSource = 'local' | 'team' | 'both';

export interface TeamRun extends JournalRun {
  readonly source: RunSource;
}

export interface TeamQuery extends RunQuery {
  /** A filter the query cannot express (status, operator): the newest `limit` runs that pass it are returned. */
  where?(run: JournalRun): boolean;
}

/** A reader of the local journal and the team's shared one, merged and deduplicated by run id. */
export interface TeamJournalReader extends JournalReader {
  readonly shared: SharedJournal;
  runs(query?: TeamQuery): Promise<TeamRun[]>;
  run(runId: string): Promise<TeamRun | null>;
  /** The shared copy of one run alone; null when there is none, or it cannot be read (warned). */
  sharedRun(runId: string): Promise<JournalRun | null>;
  /** Whether a read of the shared journal failed in this command (it was warned about, once). */
  readonly unreachable: boolean;
}

export interface TeamReaderOptions {
  /** The run in progress: never one of the runs found (its own upload is in the shared journal too). */
  current?: string;
  /** Told once when the shared journal cannot be read (local runs are returned then). */
  warn?(message: string): void;
  /** A config mistake (no such bucket) throws a UsageError instead of a warning (history --team). */
  strict?: boolean;
}

/** Shared objects read at once, ahead of the one looked at. */
const READ_AHEAD = 8;
/** As the local reader: a start time is later than its id's, by at most this much. */
const ID_SLACK_MS = 10 * 60_000;

export function teamJournal(local: JournalReader, shared: SharedJournal, opts: TeamReaderOptions = {}): TeamJournalReader {
  return new MergedReader(local, shared, opts);
}

/** The fuller of two copies of one run: the one with a run end, else the one with more events; local on a tie. */
function fuller(a: JournalRun, b: JournalRun): JournalRun {
  if (Boolean(a.end) !== Boolean(b.end)) return a.end ? a : b;
  return b.events.length > a.events.length ? b : a;
}

const withSource = (run: JournalRun, source: RunSource): TeamRun => ({ ...run, source });

class MergedReader implements TeamJournalReader {
  private failure: unknown;

  constructor(
    private readonly local: JournalReader,
    readonly shared: SharedJournal,
    private readonly opts: TeamReaderOptions,
  ) {}

  get dir(): string {
    return this.local.dir;
  }

  get unreachable(): boolean {
    return this.failure !== undefined;
  }

  async runs(query: TeamQuery = {}): Promise<TeamRun[]> {
    const { where, ...q } = query;
    const limit = q.limit ?? Infinity;
    if (limit <= 0) return [];
    const mine = where ? (await this.local.runs({ ...q, limit: undefined })).filter(where).slice(0, limit) : await this.local.runs(q);
    const byId = new Map(mine.map((r) => [r.runId, r]));
    const localIds = mine.map((r) => r.runId).sort();
    let theirs: JournalRun[] = [];
    try {
      theirs = await this.sharedRuns(q, where, limit, byId, localIds);
    } catch (err) {
      this.failed(err, 'showing local runs only');
    }
    const merged = new Map<string, TeamRun>();
    for (const r of mine) merged.set(r.runId, withSource(r, 'local'));
    for (const r of theirs) {
      const own = byId.get(r.runId);
      merged.set(r.runId, own ? withSource(fuller(own, r), 'both') : withSource(r, 'team'));
    }
    // Local runs whose shared copy was not read (complete here) are in the team journal too, as far as we know: still 'local'.
    return [...merged.values()].sort((a, b) => (a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0)).slice(0, limit);
  }

  /**
   * Shared runs matching the query, newest first: days are walked from the newest, and the walk stops
   * once `limit` runs newer than the next key are known (local ones included). A key whose run is
   * complete locally is not read.
   */
  private async sharedRuns(
    q: RunQuery,
    where: TeamQuery['where'],
    limit: number,
    local: ReadonlyMap<string, JournalRun>,
    localIds: readonly string[],
  ): Promise<JournalRun[]> {
    const procedures = q.procedure === undefined ? undefined : new Set(typeof q.procedure === 'string' ? [q.procedure] : q.procedure);
    const since = q.since === undefined ? undefined : typeof q.since === 'number' ? q.since : q.since.getTime();
    const floor = since === undefined ? undefined : runIdFloor(since - ID_SLACK_MS);
    const out: JournalRun[] = [];
    // Runs known to be newer than `id`: local ones, and shared ones not also local (all shared ones so far are newer).
    let fresh = 0;
    const known = (id: string) => localIds.length - upperBound(localIds, id) + fresh;
    const matches = (run: JournalRun) =>
      (q.includeDryRuns || run.dryRun === 'off') &&
      (!procedures || procedures.has(run.procedure)) &&
      (q.env === undefined || run.environment === q.env) &&
      (since === undefined || Date.parse(run.startedAt) >= since) &&
      (!where || where(run));
    for await (const day of this.days(floor)) {
      const ids = day.filter((id) => id !== this.opts.current && (floor === undefined || id >= floor));
      const wanted: string[] = [];
      for (const id of ids) {
        if (known(id) >= limit) break;
        // Complete here: this laptop's copy is the fuller one.
        if (!local.get(id)?.end) wanted.push(id);
      }
      for await (const { id, text } of this.read(wanted)) {
        if (known(id) >= limit) return out;
        if (text === null) continue;
        const events = parseEvents(text);
        if (!events.some((e) => e.type === 'run-start')) continue;
        const run = journalRun(id, events);
        if (!matches(run)) continue;
        out.push(run);
        if (!local.has(id)) fresh++;
      }
      // Every key still to come is older than this day's oldest: enough runs at least as new are known.
      if (ids.length && localIds.length - lowerBound(localIds, ids[ids.length - 1]) + fresh >= limit) break;
    }
    return out;
  }

  /** The run ids of each day in the shared journal, a day at a time, newest day (and id) first; none before `floor`'s day. */
  private async *days(floor: string | undefined): AsyncGenerator<string[]> {
    const { store, root } = this.shared;
    const down = async (prefix: string, digits: number, min: string | undefined) =>
      (await store.list(prefix)).prefixes
        .map((p) => p.slice(prefix.length).replace(/\/$/, ''))
        .filter((s) => new RegExp(`^\\d{${digits}}$`).test(s) && (min === undefined || s >= min))
        .sort()
        .reverse();
    const fy = floor?.slice(0, 4);
    for (const y of await down(root, 4, fy)) {
      const fm = floor && y === fy ? floor.slice(4, 6) : undefined;
      for (const m of await down(`${root}${y}/`, 2, fm)) {
        const fd = floor && y === fy && m === fm ? floor.slice(6, 8) : undefined;
        for (const d of await down(`${root}${y}/${m}/`, 2, fd)) {
          const prefix = `${root}${y}/${m}/${d}/`;
          // Within the floor's own day, the listing starts at the floor (keys sort by run id).
          const startAfter = floor && `${y}${m}${d}` === floor.slice(0, 8) ? `${prefix}${floor.slice(0, -5)}` : undefined;
          const { keys } = await store.list(prefix, { startAfter });
          const ids = keys
            .map((k) => k.slice(prefix.length))
            .filter((n) => n.endsWith('.ndjson'))
            .map((n) => n.slice(0, -'.ndjson'.length))
            .filter(isRunId);
          ids.sort();
          ids.reverse();
          yield ids;
        }
      }
    }
  }

  /** The objects' texts in the order given, a few read ahead (stopping early leaves the rest unread). */
  private async *read(ids: readonly string[]): AsyncGenerator<{ id: string; text: string | null }> {
    const abort = new AbortController();
    const pending: Array<Promise<{ id: string; text: string | null }>> = [];
    let next = 0;
    const fill = () => {
      while (pending.length < READ_AHEAD && next < ids.length) {
        const id = ids[next++];
        pending.push(this.shared.store.get(this.shared.key(id)!, abort.signal).then((text) => ({ id, text })));
      }
    };
    fill();
    try {
      while (pending.length) {
        const got = await pending.shift()!;
        fill();
        yield got;
      }
    } finally {
      abort.abort();
      for (const p of pending) p.catch(() => undefined);
    }
  }

  async run(runId: string): Promise<TeamRun | null> {
    const mine = await this.local.run(runId);
    if (mine?.end) return withSource(mine, 'local');
    const theirs = await this.sharedRun(runId);
    if (mine && theirs) return withSource(fuller(mine, theirs), 'both');
    if (theirs) return withSource(theirs, 'team');
    return mine ? withSource(mine, 'local') : null;
  }

  /** The shared copy of one run; null when there is none, or it cannot be read (warned). */
  async sharedRun(runId: string): Promise<JournalRun | null> {
    const key = this.shared.key(runId);
    if (!key || runId === this.opts.current) return null;
    try {
      const text = await this.shared.store.get(key);
      if (text === null) return null;
      const events = parseEvents(text);
      return events.some((e) => e.type === 'run-start') ? journalRun(runId, events) : null;
    } catch (err) {
      this.failed(err, 'using the local journal only');
      return null;
    }
  }

  async events(runId: string): Promise<JournalEvent[]> {
    const run = await this.run(runId);
    if (!run) return this.local.events(runId);
    return [...run.events];
  }

  /** What is in effect is decided by this laptop's runs, as without a team journal. */
  lastEffective(procedure: string | readonly string[], opts: LastEffectiveOptions): Promise<JournalRun | null> {
    return this.local.lastEffective(procedure, opts);
  }

  private failed(err: unknown, then: string): void {
    const message = `the team journal ${this.shared.url} could not be read (${sharedFailure(err)})`;
    if (this.opts.strict && err instanceof SharedStoreError && err.configMistake) {
      throw new UsageError(message, 'check journal.shared.s3 (bucket, region, endpoint) in the config');
    }
    if (this.failure === undefined) this.opts.warn?.(`${message}: ${then}`);
    this.failure = err;
  }
}

/** How many of the sorted ids are less than `id`. */
function lowerBound(sorted: readonly string[], id: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** How many of the sorted ids are at most `id`. */
function upperBound(sorted: readonly string[], id: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
