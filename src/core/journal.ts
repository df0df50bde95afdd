import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
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

  append(type: JournalEventType, fields: Record<string, unknown> = {}): void {
    if (this.fd === null) {
      mkdirSync(join(this.dir, 'runs'), { recursive: true, mode: 0o700 });
      this.fd = openSync(this.path, 'a', 0o600);
    }
    const event = this.redactor.value({ t: this.now().toISOString(), type, ...fields });
    writeSync(this.fd, JSON.stringify(event) + '\n');
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** A journal that writes nothing: offline dry runs leave no trace. */
export class NullJournal extends Journal {
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
