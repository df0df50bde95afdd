import { closeSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { StepError, UsageError } from './errors.js';
import type { Redactor } from './redact.js';

export type JournalEventType =
  | 'run-start'
  | 'gate'
  | 'step-start'
  | 'step-end'
  | 'compensation'
  | 'lock'
  | 'note'
  | 'run-end';

export interface JournalEvent {
  t: string;
  type: JournalEventType;
  [key: string]: unknown;
}

export function journalDir(env: Record<string, string | undefined>, configured?: string): string {
  if (env.RUNBOOK_JOURNAL_DIR) return env.RUNBOOK_JOURNAL_DIR;
  if (configured) return configured;
  const state = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(state, 'runbook');
}

function journalDirError(dir: string, problem: string): UsageError {
  return new UsageError(`journal directory ${dir} ${problem}; nothing was contacted or changed`, 'set $RUNBOOK_JOURNAL_DIR (or journal.dir in the config) to a directory you can write');
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
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

const RUN_ID = /^\d{8}T\d{6}-[0-9a-f]{4}$/;

export function isRunId(s: string): boolean {
  return RUN_ID.test(s);
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
    super(`the journal could not be written (${code} on ${path}): the run stopped so that nothing it does goes unrecorded`, 'free space on that disk (or set $RUNBOOK_JOURNAL_DIR to another), then check what the run left: the summary above, or runbook show <run id>');
  }
}

/**
 * Append-only NDJSON, one fsync'd line per event, so a crash loses no completed step. Every event
 * passes through the redactor before it touches the disk.
 */
export class Journal {
  private fd: number | null = null;
  readonly path: string;

  constructor(
    readonly dir: string,
    readonly runId: string,
    private readonly redactor: Redactor,
    private readonly now: () => Date,
    private readonly writes: JournalWrites = diskWrites,
  ) {
    this.path = join(dir, 'runs', `${runId}.ndjson`);
  }

  /**
   * Makes sure the run can be journaled before anything is contacted: the directory exists (or is
   * created) and the run file opens for writing. A journal that cannot be written is a config error.
   */
  open(): void {
    this.descriptor();
  }

  private descriptor(): number {
    if (this.fd !== null) return this.fd;
    ensureDirectory(this.dir, join(this.dir, 'runs'));
    try {
      this.fd = openSync(this.path, 'a', 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw journalDirError(this.dir, `is not writable (${code ?? errorText(err)} on ${this.path})`);
    }
    return this.fd;
  }

  /** Writes one whole line or nothing: a partial write is cut off again, so the file never ends in a torn line. */
  append(type: JournalEventType, fields: Record<string, unknown> = {}): void {
    const fd = this.descriptor();
    const event = this.redactor.value({ t: this.now().toISOString(), type, ...fields });
    const line = Buffer.from(JSON.stringify(event) + '\n');
    const size = fstatSync(fd).size;
    try {
      for (let off = 0; off < line.length; ) off += this.writes.write(fd, line, off, line.length - off);
      this.writes.fsync(fd);
    } catch (err) {
      try {
        ftruncateSync(fd, size);
      } catch {
        // Nothing more can be done about this file; readers skip a torn last line.
      }
      throw new JournalWriteError(this.path, (err as NodeJS.ErrnoException).code ?? errorText(err));
    }
  }

  close(): void {
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

  append(type: JournalEventType, fields: Record<string, unknown> = {}): void {
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

export async function readRun(dir: string, runId: string): Promise<JournalEvent[]> {
  const text = await readFile(join(dir, 'runs', `${runId}.ndjson`), 'utf8');
  const events: JournalEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      events.push(JSON.parse(line) as JournalEvent);
    } catch {
      // A torn last line after a crash: everything before it is intact.
    }
  }
  return events;
}

export function summarize(runId: string, events: JournalEvent[]): RunSummary {
  const start = events.find((e) => e.type === 'run-start');
  const end = [...events].reverse().find((e) => e.type === 'run-end');
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
 * Every run with a start record, oldest first. A run file without one (empty, or cut off in its first
 * line by a crash or a full disk) has nothing to show: it is left out and named to `skipped`.
 */
export async function listRuns(dir: string, skipped?: (runIds: string[]) => void): Promise<RunSummary[]> {
  let names: string[];
  try {
    names = await readdir(join(dir, 'runs'));
  } catch {
    return [];
  }
  const ids = names.filter((n) => n.endsWith('.ndjson')).map((n) => n.slice(0, -'.ndjson'.length)).sort();
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
