import { closeSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, writeSync, promises as fsp } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { StepError, UsageError } from './errors.js';
import { randomHex, sha256Hex } from './hash.js';
import type { Change, Risk } from './plan.js';
import type { Redactor } from './redact.js';
import type { RunResult } from './reporter.js';

/**
 * The lines of a run file, one per event, in the order the runner writes them. The shapes are what
 * the runner appends (RunRecord is typed by them); a file read back is trusted only that far: the
 * reader checks each line is an object with a known `type` and a `t`.
 */
interface Stamped {
  /** ISO time the event was written. */
  t: string;
}

export interface RunStartEvent extends Stamped {
  type: 'run-start';
  runId?: string;
  /** "db restart": the procedure's full name. */
  procedure: string;
  environment: string;
  /** The run's parameters as parsed (secret values redacted). */
  params?: Record<string, unknown>;
  operator?: string;
  /** Absent in hand-written journals: read as 'off'. (procedure.ts's DryRunMode; not imported: it imports this file.) */
  dryRun?: 'off' | 'plan' | 'offline';
  /** The config file the run used (null: the built-in example). */
  config?: string | null;
  /** Set on a `runbook resume` run: the run it continues. */
  resumedFrom?: string;
  /** Set on a `resume --takeover` run: the operator of the run it continues for them. */
  takeoverFrom?: string;
}

export interface GateEvent extends Stamped {
  type: 'gate';
  /** The step gated, or 'plan' for a procedure's one approval. */
  step: string;
  /** gates.ts's GateKind (not imported: gates.ts imports procedure.ts, which imports this file), or a second person's approval. */
  kind: 'none' | 'confirm' | 'severe' | 'approval';
  decision: 'approved' | 'declined';
  /** How it was approved (gates.ts's GateDecision): flags, prompt, the plan approval given earlier, or the second approver. */
  by?: 'not-needed' | 'flags' | 'prompt' | 'plan' | 'approver';
  /** Two-person approval: who asked (API server identity), who decided, the digest approved and the request object. */
  requester?: string;
  approver?: string;
  digest?: string;
  request?: string;
  reason?: string;
  /** A value only the journal knew, confirmed on resume. */
  recorded?: string;
  /** The lines of a plan approval. */
  plan?: string[];
}

export interface StepStartEvent extends Stamped {
  type: 'step-start';
  step: string;
  title: string;
  risk: Risk;
}

export interface StepEndEvent extends Stamped {
  type: 'step-end';
  step: string;
  status: 'succeeded' | 'failed' | 'planned' | 'skipped';
  durationMs?: number;
  /** What the step's run returned (succeeded only), as JSON, redacted. */
  data?: unknown;
  changes?: Change[];
  error?: string;
  /** Why a step was skipped ("nothing to change"). */
  reason?: string;
  /** A resume carried the step over as done: the run that did it, and when (so resuming this run again skips it too). */
  carriedFrom?: string;
  doneAt?: string;
}

export interface CompensationEvent extends Stamped {
  type: 'compensation';
  step: string;
  status: 'succeeded' | 'failed' | 'skipped';
  error?: string;
  byHand?: string;
}

export interface LockEvent extends Stamped {
  type: 'lock';
  lease: string;
  namespace?: string;
}

export interface NoteEvent extends Stamped {
  type: 'note';
  note: string;
}

export interface RunEndEvent extends Stamped {
  type: 'run-end';
  status: RunResult['status'];
  exitCode: number;
  durationMs: number;
  error?: { message: string; hint?: string };
  byHand?: string[];
}

export type JournalEvent = RunStartEvent | GateEvent | StepStartEvent | StepEndEvent | CompensationEvent | LockEvent | NoteEvent | RunEndEvent;
export type JournalEventType = JournalEvent['type'];
/** The fields of one kind of event, as the runner appends them (`t` and `type` are added; params are the procedure's own). */
export type JournalFields<T extends JournalEventType> = T extends 'run-start'
  ? Omit<RunStartEvent, 't' | 'type' | 'params'> & { params: unknown }
  : Omit<Extract<JournalEvent, { type: T }>, 't' | 'type'>;

const EVENT_TYPES: ReadonlySet<string> = new Set<JournalEventType>(['run-start', 'gate', 'step-start', 'step-end', 'compensation', 'lock', 'note', 'run-end']);

/**
 * The events of a run file's text. A line that is not a journal event (a torn last line after a
 * crash, a line of garbage) is left out: everything before it is intact.
 */
export function parseEvents(text: string): JournalEvent[] {
  const events: JournalEvent[] = [];
  for (const line of text.split('\n')) {
    const e = parseEvent(line);
    if (e) events.push(e);
  }
  return events;
}

/** One line of a run file, or null when it is not an event. */
export function parseEvent(line: string): JournalEvent | null {
  if (!line.trim()) return null;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const { type, t } = value as { type?: unknown; t?: unknown };
  if (typeof type !== 'string' || !EVENT_TYPES.has(type) || typeof t !== 'string') return null;
  // Checked as far as the reader relies on it; the rest is what the runner wrote.
  return value as JournalEvent;
}

export function journalDir(env: Record<string, string | undefined>, configured?: string): string {
  if (env.RUNBOOK_JOURNAL_DIR) return env.RUNBOOK_JOURNAL_DIR;
  if (configured) return configured;
  const state = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(state, 'runbook');
}

function journalDirError(dir: string, problem: string): UsageError {
  return new UsageError(
    `journal directory ${dir} ${problem}; nothing was contacted or changed`,
    'set $RUNBOOK_JOURNAL_DIR (or journal.dir in the config) to a directory you can write',
  );
}

/**
 * Creates `path` one level at a time. Not mkdirSync({ recursive: true }): under /proc it spins at
 * 100% CPU for ever (ENOENT → EEXIST on the parent → again), and it names no culprit for a file in the way.
 */
function ensureDirectory(root: string, path: string): void {
  const missing: string[] = [];
  let p = resolve(path);
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const parent = dirname(p);
      if ((code === 'ENOENT' || code === 'ENOTDIR') && parent !== p) {
        missing.unshift(p);
        p = parent;
        continue;
      }
      throw journalDirError(root, `cannot be used (${code ?? errorText(err)} on ${p})`);
    }
    if (!isDir) throw journalDirError(root, p === resolve(root) ? 'is not a directory' : `cannot be created: ${p} is not a directory`);
    break;
  }
  for (const m of missing) {
    try {
      mkdirSync(m, { mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && statSync(m, { throwIfNoEntry: false })?.isDirectory()) continue;
      throw journalDirError(root, `cannot be created (${code ?? errorText(err)} on ${m})`);
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function newRunId(now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '');
  return `${stamp}-${randomHex(2)}`;
}

const RUN_ID = /^\d{8}T\d{6}-[0-9a-f]{4}$/;

export function isRunId(s: string): boolean {
  return RUN_ID.test(s);
}

/** When a run id was made (its start, to the second), in ms since the epoch; null if it is not a run id. */
export function runIdTime(id: string): number | null {
  if (!RUN_ID.test(id)) return null;
  const ms = Date.UTC(+id.slice(0, 4), +id.slice(4, 6) - 1, +id.slice(6, 8), +id.slice(9, 11), +id.slice(11, 13), +id.slice(13, 15));
  return Number.isNaN(ms) ? null : ms;
}

/** The smallest run id made at or after `ms` (for comparing ids with a time: ids sort by time). */
export function runIdFloor(ms: number): string {
  return `${new Date(Math.ceil(ms / 1000) * 1000)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '')}-0000`;
}

/** The low-level writes of a journal (a test seam: a disk that fills up). */
export interface JournalWrites {
  write(fd: number, buffer: Buffer, offset: number, length: number): number;
  fsync(fd: number): void;
}

const diskWrites: JournalWrites = {
  write: (fd, buffer, offset, length) => writeSync(fd, buffer, offset, length),
  fsync: (fd) => fsyncSync(fd),
};

/** A journal line that could not be written (disk full, I/O error): the run stops rather than go on unrecorded. */
export class JournalWriteError extends StepError {
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(
      `the journal could not be written (${code} on ${path}): the run stopped so that nothing it does goes unrecorded`,
      'free space on that disk (or set $RUNBOOK_JOURNAL_DIR to another), then check what the run left: the summary above, or runbook show <run id>',
    );
  }
}

/** Told each line once it is on disk (its exact text, without the newline): the shared journal uploads from it. */
export type JournalListener = (line: string, type: JournalEventType) => void;

/** The hash of a chain's first `prev`: the run id, so a run file renamed to another id no longer verifies. */
export function chainSeed(runId: string): string {
  return sha256Hex(`runbook run ${runId}`);
}

/** The chain fields end every line: `…,"prev":"<64 hex>","h":"<64 hex>"}`. */
export const CHAIN_TAIL = /,"prev":"([0-9a-f]{64})","h":"([0-9a-f]{64})"\}$/;

/**
 * One journal line, hash-chained: `prev` is the hash of the line before (the chain seed for the
 * first), `h` the sha256 of the line's own text up to and including `prev` (closed with `}`), so an
 * edited line fails at itself and a removed or reordered one at the line after it.
 */
export function chainLine(event: Record<string, unknown>, prev: string): { line: string; h: string } {
  const body = JSON.stringify({ ...event, prev });
  const h = sha256Hex(body);
  return { line: `${body.slice(0, -1)},"h":"${h}"}`, h };
}

/**
 * Append-only NDJSON, one fsync'd line per event, so a crash loses no completed step. Every event
 * passes through the redactor before it touches the disk, and every line is hash-chained to the one
 * before it (`runbook verify` checks the chain).
 */
export class Journal {
  private fd: number | null = null;
  readonly path: string;
  private prev: string;
  private readonly listeners: JournalListener[] = [];
  private unsynced = false;

  constructor(
    readonly dir: string,
    readonly runId: string,
    private readonly redactor: Redactor,
    private readonly now: () => Date,
    private readonly writes: JournalWrites = diskWrites,
    /**
     * 'line' (the default): every line is fsync'd before the run goes on, so a crash loses no completed
     * step. 'end': one fsync when the journal closes, for runs that change nothing (nothing to put
     * back after a crash; a killed process loses nothing either, its lines are written as they come).
     */
    private readonly sync: 'line' | 'end' = 'line',
  ) {
    this.path = runFile(dir, runId);
    this.prev = chainSeed(runId);
  }

  /**
   * Makes sure the run can be journaled before anything is contacted: the directory exists (or is
   * created) and the run file opens for writing. A journal that cannot be written is a config error.
   */
  open(): void {
    this.descriptor();
  }

  /** Every line written from now on is told to `listener`, after it is on disk. A listener that throws is not the run's problem. */
  onAppend(listener: JournalListener): void {
    this.listeners.push(listener);
  }

  private descriptor(): number {
    if (this.fd !== null) return this.fd;
    ensureDirectory(this.dir, dirname(this.path));
    try {
      this.fd = openSync(this.path, 'a+', 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw journalDirError(this.dir, `is not writable (${code ?? errorText(err)} on ${this.path})`);
    }
    // A file with lines already (written before by this run id): the chain goes on from its last line.
    if (fstatSync(this.fd).size > 0) {
      const last = readFileSync(this.fd, 'utf8').trimEnd().split('\n').pop() ?? '';
      const m = CHAIN_TAIL.exec(last);
      if (m) this.prev = m[2];
    }
    return this.fd;
  }

  /** Writes one whole line or nothing: a partial write is cut off again, so the file never ends in a torn line. */
  append(type: JournalEventType, fields: Record<string, unknown> = {}): void {
    const fd = this.descriptor();
    const event: Record<string, unknown> = this.redactor.value({ t: this.now().toISOString(), type, ...fields });
    const { line: text, h } = chainLine(event, this.prev);
    const line = Buffer.from(text + '\n');
    const size = fstatSync(fd).size;
    try {
      for (let off = 0; off < line.length;) off += this.writes.write(fd, line, off, line.length - off);
      if (this.sync === 'line') this.writes.fsync(fd);
      else this.unsynced = true;
    } catch (err) {
      try {
        ftruncateSync(fd, size);
      } catch {
        // Nothing more can be done about this file; readers skip a torn last line.
      }
      throw new JournalWriteError(this.path, (err as NodeJS.ErrnoException).code ?? errorText(err));
    }
    this.prev = h;
    for (const l of this.listeners) {
      try {
        l(text, type);
      } catch {
        // An observer (the shared journal) never stops the run; it reports its own failures.
      }
    }
  }

  close(): void {
    if (this.fd !== null && this.unsynced) {
      try {
        this.writes.fsync(this.fd);
      } catch {
        // A run that changed nothing: its lines are written; only an OS crash could still lose them.
      }
    }
    this.unsynced = false;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * The runner's side of the journal: a failed write never throws out of compensation or the lock's
 * release; it is kept, no more lines are tried, and the run stops at the next step boundary.
 */
export class RunRecord {
  failure?: JournalWriteError;
  constructor(private readonly journal: Journal) {}

  append<T extends JournalEventType>(type: T, fields: JournalFields<T>): void {
    if (this.failure) return;
    try {
      this.journal.append(type, fields);
    } catch (err) {
      this.failure = err instanceof JournalWriteError ? err : new JournalWriteError(this.journal.path, errorText(err));
    }
  }
}

/** A journal that writes nothing: offline dry runs leave no trace. */
export class NullJournal extends Journal {
  override open(): void {}
  override append(): void {}
}

export interface RunSummary {
  runId: string;
  procedure: string;
  environment: string;
  operator: string;
  dryRun: string;
  startedAt: string;
  status: string;
  exitCode: number | null;
  durationMs: number | null;
}

/**
 * @deprecated read through `openJournal(dir)` (src/core/journal-reader.ts): `events(runId)`.
 * Every event of one run, oldest first; throws when the file cannot be read.
 */
export async function readRun(dir: string, runId: string): Promise<JournalEvent[]> {
  return parseEvents(await fsp.readFile(runFile(dir, runId), 'utf8'));
}

/**
 * Where a run's events are kept: runs/YYYY/MM/DD/<run id>.ndjson, by the (UTC) day in its id, so that
 * reading the recent runs lists only the recent days, however many runs the journal holds. A name
 * that is not a run id stays in runs/, where every run file was before the day layout (the reader
 * still reads those: journal-reader.ts's listRunFiles and findRunFile).
 */
export function runFile(dir: string, runId: string): string {
  if (!RUN_ID.test(runId)) return join(dir, 'runs', `${runId}.ndjson`);
  return join(dir, 'runs', runId.slice(0, 4), runId.slice(4, 6), runId.slice(6, 8), `${runId}.ndjson`);
}

function lastOf<T extends JournalEvent>(events: readonly JournalEvent[], is: (e: JournalEvent) => e is T): T | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (is(e)) return e;
  }
  return undefined;
}

/** The summary `history` shows of a run (its start and end records). */
export function summarize(runId: string, events: readonly JournalEvent[]): RunSummary {
  const start = events.find((e): e is RunStartEvent => e.type === 'run-start');
  const end = lastOf(events, (e): e is RunEndEvent => e.type === 'run-end');
  return {
    runId,
    procedure: String(start?.procedure ?? '?'),
    environment: String(start?.environment ?? '?'),
    operator: String(start?.operator ?? '?'),
    dryRun: String(start?.dryRun ?? 'off'),
    startedAt: String(start?.t ?? ''),
    status: end ? String(end.status) : 'incomplete',
    exitCode: end ? Number(end.exitCode) : null,
    durationMs: end ? Number(end.durationMs) : null,
  };
}

/**
 * @deprecated read through `openJournal(dir)` (src/core/journal-reader.ts): `runs()` reads only what it returns.
 * Every run with a start record, oldest first. A run file without one (empty, or cut off in its first
 * line by a crash or a full disk) has nothing to show: it is left out and named to `skipped`.
 */
export async function listRuns(dir: string, skipped?: (runIds: string[]) => void): Promise<RunSummary[]> {
  let names: string[];
  try {
    names = await fsp.readdir(join(dir, 'runs'));
  } catch {
    return [];
  }
  const ids = names
    .filter((n) => n.endsWith('.ndjson'))
    .map((n) => n.slice(0, -'.ndjson'.length))
    .sort();
  const out: RunSummary[] = [];
  const broken: string[] = [];
  for (const id of ids) {
    const events = await readRun(dir, id).catch(() => []);
    if (events.some((e) => e.type === 'run-start')) out.push(summarize(id, events));
    else broken.push(id);
  }
  if (broken.length) skipped?.(broken);
  return out;
}
