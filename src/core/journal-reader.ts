import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { StepRef } from './step-ref.js';
import {
  parseEvent,
  parseEvents,
  runFile,
  runIdFloor,
  summarize,
  type JournalEvent,
  type RunEndEvent,
  type RunStartEvent,
  type RunSummary,
  type StepEndEvent,
} from './journal.js';

/**
 * One run read back from the journal: its summary (what `history` shows), its events, and what its
 * steps left in effect.
 */
export interface JournalRun extends RunSummary {
  readonly start: RunStartEvent;
  /** The last end record; undefined for a run still going, or killed. */
  readonly end: RunEndEvent | undefined;
  /** The run's parameters as journaled (secret values redacted). */
  readonly params: Readonly<Record<string, unknown>>;
  readonly events: readonly JournalEvent[];
  /** The step's first successful end record, if it succeeded in this run (put back or not). */
  done(step: StepRef<unknown> | string): StepEndEvent | undefined;
  /** Whether a compensation put the step back. */
  undone(step: StepRef<unknown> | string): boolean;
  /**
   * What the step returned, when it succeeded in this run and was not put back (else undefined):
   * the change it made is still in effect. Typed by the step (the journal keeps it as JSON, redacted).
   */
  effect<D>(step: StepRef<D>): D | undefined;
  effect(step: string): unknown;
}

export interface RunQuery {
  /** Only runs started at or after this time. */
  since?: Date | number;
  /** Only runs of this procedure (or these). */
  procedure?: string | readonly string[];
  /** Only runs in this environment. */
  env?: string;
  /** At most this many (the newest). */
  limit?: number;
  /** Dry runs too (left out by default: they changed nothing). */
  includeDryRuns?: boolean;
}

export interface LastEffectiveOptions {
  /** The environment the run changed. */
  env: string;
  /**
   * The steps whose changes count: a run is in effect when one of them succeeded and was not put
   * back. Default: any step of a risk other than read.
   */
  steps?: readonly (StepRef<unknown> | string)[];
  /**
   * Decides about a real run of the procedure in the environment before its steps are looked at:
   * false passes over it (to older runs), 'none' ends the search: nothing is in effect.
   */
  where?(run: JournalRun): boolean | 'none';
  /**
   * Runs that close what came before them (a revert, a completed recovery): meeting a real one in
   * the environment (that passes `where`, if given) before an effective run ends the search with null.
   */
  closedBy?: { procedure: string | readonly string[]; where?(run: JournalRun): boolean };
  /** Look at no more than this many of the newest run files (whatever they hold). */
  scan?: number;
}

export interface JournalReader {
  /** The journal directory. */
  readonly dir: string;
  /** Runs with a start record, newest first, reading only as many run files as the query needs. */
  runs(query?: RunQuery): Promise<JournalRun[]>;
  /** One run by id; null when there is no such run file, or it has no start record. */
  run(runId: string): Promise<JournalRun | null>;
  /** Every event of one run, oldest first. Throws when there is no such run (or its file cannot be read). */
  events(runId: string): Promise<JournalEvent[]>;
  /**
   * The newest real (not dry) run of the procedure (or one of them) in the environment whose
   * changes are still in effect (not compensated), with its events; null when there is none.
   */
  lastEffective(procedure: string | readonly string[], opts: LastEffectiveOptions): Promise<JournalRun | null>;
}

export interface ReaderOptions {
  /** The run in progress (the reader's own): never one of the runs found. */
  current?: string;
  /** Told once about run files that are skipped (empty, cut off in their first line, unreadable). */
  warn?(message: string): void;
}

/** Run files read at once, ahead of the one looked at (the reads overlap; stopping early drops the rest). */
const READ_AHEAD = 16;
/**
 * What `lastEffective` reads of a run file to see whose run it is: the start record is the first
 * line; the rest of the file is read only for a run it looks at further.
 */
const HEAD_BYTES = 4096;
/**
 * A run id is made just before its start record is written: a start time can only be later than
 * its id's. `since` reads ids down to this much before the cutoff, then stops.
 */
const ID_SLACK_MS = 10 * 60_000;

/** A reader of the journal in `dir` (runs/YYYY/MM/DD/<run id>.ndjson, and older builds' runs/<run id>.ndjson). */
export function openJournal(dir: string, opts: ReaderOptions = {}): JournalReader {
  return new FileJournalReader(dir, opts);
}

/** A run file found in the journal. */
export interface RunFileEntry {
  readonly id: string;
  readonly path: string;
}

/** The directory levels under runs/ of the day layout (runFile's): year, month, day. */
export const DAY_DIRS: readonly RegExp[] = [/^\d{4}$/, /^\d{2}$/, /^\d{2}$/];
const SUFFIX = '.ndjson';

/** Where builds before the day layout kept a run (runs/<id>.ndjson). */
export function flatRunFile(dir: string, runId: string): string {
  return join(dir, 'runs', `${runId}${SUFFIX}`);
}

/** The ids of the run files among a directory's names, newest first. */
export function runIdsIn(names: readonly string[]): string[] {
  const ids: string[] = [];
  for (const n of names) if (n.endsWith(SUFFIX) && n.length > SUFFIX.length) ids.push(n.slice(0, -SUFFIX.length));
  return ids.sort().reverse();
}

/** A directory's names; none when it is gone (pruned since it was listed), not a directory, or never made. */
export async function namesIn(path: string): Promise<string[]> {
  try {
    return await fsp.readdir(path);
  } catch {
    return [];
  }
}

/**
 * The day layout's run files under `path` (at `level`), a day's at a time, newest first: days
 * older than `floor`'s are not listed, and files `keep` refuses are left out.
 */
async function* days(
  path: string,
  names: readonly string[],
  level: number,
  prefix: string,
  floor: string | undefined,
  keep: (id: string) => boolean,
): AsyncGenerator<RunFileEntry[]> {
  if (level === DAY_DIRS.length) {
    const files = runIdsIn(names)
      .filter(keep)
      .map((id) => ({ id, path: join(path, `${id}${SUFFIX}`) }));
    if (files.length) yield files;
    return;
  }
  const subs = names
    .filter((n) => DAY_DIRS[level].test(n))
    .sort()
    .reverse();
  for (const sub of subs) {
    const key = prefix + sub;
    if (floor !== undefined && key < floor.slice(0, key.length)) return;
    const at = join(path, sub);
    yield* days(at, await namesIn(at), level + 1, key, floor, keep);
  }
}

/**
 * The journal's run files, newest id first, listing a day's directory only when it is reached (a
 * reader that stops after the newest few lists a few days, not the whole journal). Old flat files
 * (runs/<id>.ndjson) are merged in by id. With `floor` (a run id, see runIdFloor), time-ordered ids
 * below it are left out and older days never listed; other names are always listed.
 */
export async function* listRunFiles(dir: string, floor?: string): AsyncGenerator<RunFileEntry> {
  const runs = join(dir, 'runs');
  const top = await namesIn(runs);
  const keep = (id: string) => floor === undefined || !isTimeOrdered(id) || id >= floor;
  const flat = runIdsIn(top).filter(keep);
  let i = 0;
  for await (const day of days(runs, top, 0, '', floor, keep)) {
    for (const e of day) {
      while (i < flat.length && flat[i] > e.id) yield { id: flat[i], path: flatRunFile(dir, flat[i++]) };
      // The same id in both places (copied by hand): the day layout's is the run's.
      if (flat[i] === e.id) i++;
      yield e;
    }
  }
  for (; i < flat.length; i++) yield { id: flat[i], path: flatRunFile(dir, flat[i]) };
}

/** The path of a run's file, in the day layout or an older build's flat one; null when there is none. */
export async function findRunFile(dir: string, runId: string): Promise<string | null> {
  for (const path of runFileCandidates(dir, runId)) {
    try {
      await fsp.access(path);
      return path;
    } catch {
      // Not there: the other place, if any.
    }
  }
  return null;
}

function runFileCandidates(dir: string, runId: string): string[] {
  const path = runFile(dir, runId);
  const flat = flatRunFile(dir, runId);
  return path === flat ? [path] : [path, flat];
}

interface RunFileText {
  id: string;
  path: string;
  /** null: the file is gone (pruned or removed since it was listed), or could not be read. */
  text: string | null;
  unreadable?: boolean;
  /** Only the file's first HEAD_BYTES: the start record, if it fits. */
  partial?: boolean;
}

class FileJournalReader implements JournalReader {
  private readonly warned = new Set<string>();

  constructor(
    readonly dir: string,
    private readonly opts: ReaderOptions,
  ) {}

  async runs(query: RunQuery = {}): Promise<JournalRun[]> {
    const procedures = query.procedure === undefined ? undefined : new Set(typeof query.procedure === 'string' ? [query.procedure] : query.procedure);
    const since = query.since === undefined ? undefined : typeof query.since === 'number' ? query.since : query.since.getTime();
    const limit = query.limit ?? Infinity;
    const out: JournalRun[] = [];
    const broken: string[] = [];
    if (limit <= 0) return out;
    // Ids sort by time: nothing older than the cutoff (less the slack) can have started after it.
    const floor = since === undefined ? undefined : runIdFloor(since - ID_SLACK_MS);
    for await (const file of this.read(this.files(floor))) {
      const run = this.toRun(file, broken);
      if (!run) continue;
      if (!query.includeDryRuns && run.dryRun !== 'off') continue;
      if (procedures && !procedures.has(run.procedure)) continue;
      if (query.env !== undefined && run.environment !== query.env) continue;
      if (since !== undefined && !(Date.parse(run.startedAt) >= since)) continue;
      out.push(run);
      if (out.length >= limit) break;
    }
    this.report(broken);
    return out;
  }

  async run(runId: string): Promise<JournalRun | null> {
    const file = await this.readById(runId);
    const broken: string[] = [];
    const run = this.toRun(file, broken);
    this.report(broken);
    return run;
  }

  async events(runId: string): Promise<JournalEvent[]> {
    const [path, flat] = runFileCandidates(this.dir, runId);
    try {
      return parseEvents(await fsp.readFile(path, 'utf8'));
    } catch (err) {
      if (flat === undefined || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return parseEvents(await fsp.readFile(flat, 'utf8'));
  }

  async lastEffective(procedure: string | readonly string[], opts: LastEffectiveOptions): Promise<JournalRun | null> {
    const wanted = new Set(typeof procedure === 'string' ? [procedure] : procedure);
    const closers = new Set(opts.closedBy ? (typeof opts.closedBy.procedure === 'string' ? [opts.closedBy.procedure] : opts.closedBy.procedure) : []);
    const broken: string[] = [];
    try {
      for await (let file of this.read(this.files(undefined, opts.scan), true)) {
        // The first line decides whether the run is looked at any further.
        let start = file.text === null ? null : startOf(file.text);
        if (!start && file.partial) {
          file = await this.readOne(file);
          start = file.text === null ? null : startOf(file.text);
        }
        if (!start) {
          if (file.text !== null || file.unreadable) broken.push(file.id);
          continue;
        }
        if (start.environment !== opts.env || (start.dryRun ?? 'off') !== 'off') continue;
        const isCloser = closers.has(start.procedure);
        if (!isCloser && !wanted.has(start.procedure)) continue;
        if (file.partial) file = await this.readOne(file);
        const run = this.toRun(file, broken);
        if (!run) continue;
        if (isCloser && (!opts.closedBy?.where || opts.closedBy.where(run))) return null;
        if (!wanted.has(run.procedure)) continue;
        const verdict = opts.where ? opts.where(run) : true;
        if (verdict === 'none') return null;
        if (!verdict) continue;
        if (inEffect(run, opts.steps)) return run;
      }
      return null;
    } finally {
      this.report(broken);
    }
  }

  /** The run files, newest first (the run in progress left out), at most `max` of them. */
  private async *files(floor: string | undefined, max = Infinity): AsyncGenerator<RunFileEntry> {
    let n = 0;
    if (n >= max) return;
    for await (const e of listRunFiles(this.dir, floor)) {
      if (e.id === this.opts.current) continue;
      yield e;
      if (++n >= max) return;
    }
  }

  /** The files' texts in the order listed, a few read ahead (stopping early leaves the rest unread, and unlisted). */
  private async *read(files: AsyncIterator<RunFileEntry>, head = false): AsyncGenerator<RunFileText> {
    const pending: Array<Promise<RunFileText>> = [];
    let listed = false;
    const fill = async () => {
      while (!listed && pending.length < READ_AHEAD) {
        const next = await files.next();
        if (next.done) listed = true;
        else pending.push(head ? this.readHead(next.value) : this.readOne(next.value));
      }
    };
    try {
      await fill();
      while (pending.length) {
        const file = await pending.shift()!;
        await fill();
        yield file;
      }
    } finally {
      // Reads already started are let finish; their results are dropped.
      for (const p of pending) p.catch(() => undefined);
      await files.return?.();
    }
  }

  /** A run by id: its file in the day layout, else an older build's flat one. */
  private async readById(id: string): Promise<RunFileText> {
    let file: RunFileText | undefined;
    for (const path of runFileCandidates(this.dir, id)) {
      file = await this.readOne({ id, path });
      if (file.text !== null || file.unreadable) return file;
    }
    return file ?? { id, path: runFile(this.dir, id), text: null };
  }

  private async readOne({ id, path }: RunFileEntry): Promise<RunFileText> {
    try {
      return { id, path, text: await fsp.readFile(path, 'utf8') };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT' ? { id, path, text: null } : { id, path, text: null, unreadable: true };
    }
  }

  /** The beginning of a run file (all of it, when it is small). */
  private async readHead({ id, path }: RunFileEntry): Promise<RunFileText> {
    try {
      const fh = await fsp.open(path, 'r');
      try {
        const buffer = Buffer.allocUnsafe(HEAD_BYTES);
        const { bytesRead } = await fh.read(buffer, 0, HEAD_BYTES, 0);
        return { id, path, text: buffer.toString('utf8', 0, bytesRead), partial: bytesRead === HEAD_BYTES };
      } finally {
        await fh.close();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT' ? { id, path, text: null } : { id, path, text: null, unreadable: true };
    }
  }

  /** The run, or null (named to `broken` when the file is there but holds no start record). */
  private toRun(file: RunFileText, broken: string[]): JournalRun | null {
    if (file.text === null) {
      if (file.unreadable) broken.push(file.id);
      return null;
    }
    const events = parseEvents(file.text);
    if (!events.some((e) => e.type === 'run-start')) {
      broken.push(file.id);
      return null;
    }
    return journalRun(file.id, events);
  }

  private report(broken: string[]): void {
    const fresh = broken.filter((id) => !this.warned.has(id)).sort();
    if (!fresh.length) return;
    for (const id of fresh) this.warned.add(id);
    this.opts.warn?.(`skipped ${fresh.length} run file${fresh.length > 1 ? 's' : ''} with no start record (empty or cut off): ${fresh.join(', ')}`);
  }
}

/** Ids made by newRunId (and so sorted by time); other file names are always read. */
function isTimeOrdered(id: string): boolean {
  return /^\d{8}T\d{6}-/.test(id);
}

/** The start record, from the first line alone when it is there (the runner writes it first). */
function startOf(text: string): RunStartEvent | null {
  const nl = text.indexOf('\n');
  const first = parseEvent(nl < 0 ? text : text.slice(0, nl));
  if (first?.type === 'run-start') return first;
  // Not first (a hand-made journal): anywhere, as before.
  return parseEvents(text).find((e): e is RunStartEvent => e.type === 'run-start') ?? null;
}

function stepId(step: StepRef<unknown> | string): string {
  return typeof step === 'string' ? step : step.id;
}

/** A run's events with the summary and step helpers. */
export function journalRun(runId: string, events: readonly JournalEvent[]): JournalRun {
  const start = events.find((e): e is RunStartEvent => e.type === 'run-start');
  if (!start) throw new Error(`internal: run ${runId} has no start record`);
  let end: RunEndEvent | undefined;
  for (const e of events) if (e.type === 'run-end') end = e;
  const params = start.params !== null && typeof start.params === 'object' ? start.params : {};
  const done = (step: StepRef<unknown> | string) => {
    const id = stepId(step);
    return events.find((e): e is StepEndEvent => e.type === 'step-end' && e.step === id && e.status === 'succeeded');
  };
  const undone = (step: StepRef<unknown> | string) => {
    const id = stepId(step);
    return events.some((e) => e.type === 'compensation' && e.step === id && e.status === 'succeeded');
  };
  function effect<D>(step: StepRef<D>): D | undefined;
  function effect(step: string): unknown;
  function effect(step: StepRef<unknown> | string): unknown {
    const d = done(step);
    return d && !undone(step) ? (d.data ?? undefined) : undefined;
  }
  return { ...summarize(runId, events), start, end, params, events, done, undone, effect };
}

/** The summary fields alone (what `history --json` prints, and what a report keeps). */
export function runSummary(run: RunSummary): RunSummary {
  const { runId, procedure, environment, operator, dryRun, startedAt, status, exitCode, durationMs } = run;
  return { runId, procedure, environment, operator, dryRun, startedAt, status, exitCode, durationMs };
}

/** Whether one of the steps (default: any that changes something) succeeded and was not put back. */
function inEffect(run: JournalRun, steps: LastEffectiveOptions['steps']): boolean {
  if (steps) return steps.some((s) => run.done(s) !== undefined && !run.undone(s));
  const risks = new Map<string, string>();
  for (const e of run.events) if (e.type === 'step-start') risks.set(e.step, e.risk);
  return run.events.some((e) => e.type === 'step-end' && e.status === 'succeeded' && (risks.get(e.step) ?? 'read') !== 'read' && !run.undone(e.step));
}
