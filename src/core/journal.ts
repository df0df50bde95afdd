import { closeSync, fsyncSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { UsageError } from './errors.js';
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

  append(type: JournalEventType, fields: Record<string, unknown> = {}): void {
    const fd = this.descriptor();
    const event = this.redactor.value({ t: this.now().toISOString(), type, ...fields });
    writeSync(fd, JSON.stringify(event) + '\n');
    fsyncSync(fd);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
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

export async function listRuns(dir: string): Promise<RunSummary[]> {
  let names: string[];
  try {
    names = await readdir(join(dir, 'runs'));
  } catch {
    return [];
  }
  const ids = names.filter((n) => n.endsWith('.ndjson')).map((n) => n.slice(0, -'.ndjson'.length)).sort();
  const out: RunSummary[] = [];
  for (const id of ids) out.push(summarize(id, await readRun(dir, id)));
  return out;
}
