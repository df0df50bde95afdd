import { mkdirSync, writeFileSync, promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from './errors.js';
import { isRunId, parseEvent, runFile, type Journal, type JournalEventType } from './journal.js';

/** One level of a listing under a prefix (S3's delimiter "/"): the objects there and the "folders" below it. */
export interface SharedListing {
  /** Full keys, in S3's (ascending) order. */
  keys: string[];
  /** Full prefixes, ending in "/". */
  prefixes: string[];
}

/**
 * The team journal's storage, as the journal needs it (src/clients/journal-s3.ts adapts S3 to it). It
 * throws SharedStoreError, so a missing bucket (a config mistake) can be told from an outage.
 */
export interface SharedStore {
  readonly bucket: string;
  /** Writes the whole object (a new version of it, in a versioned or Object Lock bucket). */
  put(key: string, body: string, metadata: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<void>;
  /** The object's text; null when there is no such object. */
  get(key: string, signal?: AbortSignal): Promise<string | null>;
  /** Every object and sub-prefix right under `prefix` (all pages), optionally only keys after `startAfter`. */
  list(prefix: string, opts?: { startAfter?: string; signal?: AbortSignal }): Promise<SharedListing>;
  /** Lets go of connections (the process must not wait on an idle socket). */
  close(): void;
}

/** A failed call to the shared store: one readable line, and whether it is the config's fault (no such bucket). */
export class SharedStoreError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly configMistake: boolean,
  ) {
    super(message);
    this.name = 'SharedStoreError';
  }
}

/** What went wrong with the shared journal, in one line. */
export function sharedFailure(err: unknown): string {
  if (err instanceof SharedStoreError) return err.message;
  const e = err as { name?: string };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'no answer in time';
  return errorMessage(err);
}

/**
 * The team journal: a store and the key prefix runs live under, `<prefix>/runs/YYYY/MM/DD/<run id>.ndjson`
 * (the day from the run id), so reading recent runs lists only recent days.
 */
export class SharedJournal {
  /** s3://bucket/prefix, for messages. */
  readonly url: string;
  /** Where run days start: "<prefix>/runs/". */
  readonly root: string;

  constructor(
    readonly store: SharedStore,
    readonly prefix: string,
  ) {
    const p = prefix.replace(/^\/+|\/+$/g, '');
    this.url = `s3://${store.bucket}${p ? `/${p}` : ''}`;
    this.root = `${p ? `${p}/` : ''}runs/`;
  }

  /** The run's key; null for a name that is not a run id (those are never shared). */
  key(runId: string): string | null {
    if (!isRunId(runId)) return null;
    return `${this.root}${runId.slice(0, 4)}/${runId.slice(4, 6)}/${runId.slice(6, 8)}/${runId}.ndjson`;
  }

  close(): void {
    this.store.close();
  }
}

/** The object metadata of a run (from its start line): who ran what, where. Header values must be printable ASCII. */
export function runMetadata(startLine: string): Record<string, string> {
  const e = parseEvent(startLine);
  if (e?.type !== 'run-start') return {};
  const safe = (v: string) => (/^[\x20-\x7e]*$/.test(v) ? v : encodeURIComponent(v));
  const out: Record<string, string> = { procedure: safe(e.procedure), environment: safe(e.environment) };
  if (e.operator) out.operator = safe(e.operator);
  return out;
}

const PENDING = 'shared-pending';

/** What a marker holds: which sink the run is owed to, and the process that may still be writing it. */
interface Marker {
  sink?: string;
  pid?: number;
  host?: string;
}

/** `<journal dir>/shared-pending/<run id>`: the shared copy of the run may be behind the local file. */
export function pendingMarker(dir: string, runId: string): string {
  return join(dir, PENDING, runId);
}

function writeMarker(dir: string, runId: string, sink: string): void {
  try {
    mkdirSync(join(dir, PENDING), { recursive: true, mode: 0o700 });
    writeFileSync(pendingMarker(dir, runId), JSON.stringify({ sink, pid: process.pid, host: hostname() } satisfies Marker) + '\n', { mode: 0o600 });
  } catch {
    // The journal directory was writable a moment ago; without a marker the run is only not caught up later.
  }
}

async function removeMarker(dir: string, runId: string): Promise<void> {
  await fsp.unlink(pendingMarker(dir, runId)).catch(() => undefined);
}

/** The events after which a run's shared copy is written again (the run-start alone waits for the first of them). */
const UPLOAD_ON: ReadonlySet<JournalEventType> = new Set<JournalEventType>(['gate', 'step-end', 'compensation', 'run-end']);

export interface RunUploadOptions {
  /** The local journal directory (for the pending marker). */
  dir: string;
  runId: string;
  warn(message: string): void;
  /** Limit of one upload (default 10 s). */
  attemptMs?: number;
  /** Called once, when the run's first upload starts. */
  onFirstUpload?(): void;
}

/**
 * Keeps a run's shared copy up to date as the run goes: the object is the whole run file, written
 * again after every gate, step end, compensation and run end. At most one upload is in flight; lines
 * that arrive meanwhile are sent together by the next one (the latest text wins). A failure never
 * stops the run: the first one warns, and the pending marker (made when the first upload starts,
 * removed once the complete file is up) lets a later command catch up.
 */
export class RunUpload {
  private text = '';
  private metadata: Record<string, string> = {};
  private inflight: Promise<void> | null = null;
  private dirty = false;
  private started = false;
  /** Length of the text last uploaded, and last tried. */
  private uploaded = -1;
  private tried = -1;
  private lastError: unknown;
  private warned = false;
  private finished: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly key: string | null;

  constructor(
    private readonly shared: SharedJournal,
    private readonly opts: RunUploadOptions,
  ) {
    this.key = shared.key(opts.runId);
  }

  attach(journal: Pick<Journal, 'onAppend'>): void {
    journal.onAppend((line, type) => this.line(line, type));
  }

  /** One line the journal wrote (exact text, no newline). */
  line(line: string, type: JournalEventType): void {
    if (this.finished || !this.key) return;
    if (type === 'run-start') this.metadata = runMetadata(line);
    this.text += line + '\n';
    if (!UPLOAD_ON.has(type)) return;
    // A run refused before it contacted anything (exit 2) contacts nothing now either.
    if (type === 'run-end' && !this.started) {
      const end = parseEvent(line);
      if (end?.type === 'run-end' && end.exitCode === 2) return;
    }
    this.schedule();
  }

  private schedule(): void {
    if (!this.started) {
      this.started = true;
      writeMarker(this.opts.dir, this.opts.runId, this.shared.url);
      this.opts.onFirstUpload?.();
    }
    this.dirty = true;
    this.inflight ??= this.pump();
  }

  private async pump(): Promise<void> {
    try {
      while (this.dirty && !this.abort.signal.aborted) {
        this.dirty = false;
        const body = this.text;
        this.tried = body.length;
        try {
          const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.attemptMs ?? 10_000)]);
          await this.shared.store.put(this.key!, body, this.metadata, signal);
          this.uploaded = Math.max(this.uploaded, body.length);
          this.lastError = undefined;
        } catch (err) {
          this.lastError = err;
          this.failed(err);
        }
      }
    } finally {
      this.inflight = null;
    }
  }

  private failed(err: unknown): void {
    // Another command's catch-up may have removed the marker meanwhile: the run is owed again.
    writeMarker(this.opts.dir, this.opts.runId, this.shared.url);
    if (this.warned) return;
    this.warned = true;
    this.opts.warn(
      `the team journal ${this.shared.url} could not be written (${sharedFailure(err)}): run ${this.opts.runId} goes on, journaled locally, and is uploaded by the next command that reaches it`,
    );
  }

  /** Whether the shared copy holds every line written so far. */
  get complete(): boolean {
    return this.uploaded === this.text.length;
  }

  /**
   * Waits (at most `boundMs`) for the complete run to be uploaded; then stops trying. The marker is
   * removed when it is up, and stays (with one warning) when it is not.
   */
  finish(boundMs = 5000): Promise<void> {
    this.finished ??= this.settle(boundMs);
    return this.finished;
  }

  private async settle(boundMs: number): Promise<void> {
    if (!this.started) return;
    // The complete text is retried once unless the last try was of it already.
    if (!this.complete && this.tried !== this.text.length) {
      this.dirty = true;
      this.inflight ??= this.pump();
    }
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((r) => (timer = setTimeout(r, boundMs)));
    const idle = (async () => {
      while (this.inflight) await this.inflight;
    })();
    await Promise.race([idle, bound]);
    clearTimeout(timer);
    if (this.complete) {
      await removeMarker(this.opts.dir, this.opts.runId);
      return;
    }
    this.abort.abort();
    if (!this.lastError) this.lastError = new SharedStoreError(`no answer within ${Math.round(boundMs / 1000)}s`, 'Timeout', false);
    this.failed(this.lastError);
  }
}

export interface CatchUpOptions {
  /** The run in progress in this process (its own upload keeps it). */
  current?: string;
  warn(message: string): void;
  /** At most this many runs per command (default 20). */
  maxRuns?: number;
  /** And this long (default 5 s). */
  timeMs?: number;
}

export interface CatchUpResult {
  uploaded: string[];
  /** Still owed after this catch-up (failed, not tried, or still being written by a live process). */
  pending: string[];
}

/** Whether a process of this host still runs (a run in another terminal uploads its own run). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Uploads the runs a marker says are owed to this sink (a run that could not reach it, or was
 * killed before its last upload), oldest first, bounded in count and time. The first failure ends
 * it with one warning; the markers stay for the next command.
 */
export async function catchUp(shared: SharedJournal, dir: string, opts: CatchUpOptions): Promise<CatchUpResult> {
  let names: string[];
  try {
    names = await fsp.readdir(join(dir, PENDING));
  } catch {
    return { uploaded: [], pending: [] };
  }
  const ids = names.filter((n) => isRunId(n) && n !== opts.current).sort();
  const uploaded: string[] = [];
  const pending: string[] = [];
  const deadline = Date.now() + (opts.timeMs ?? 5000);
  const maxRuns = opts.maxRuns ?? 20;
  let failure: unknown;
  for (const id of ids) {
    if (failure !== undefined || uploaded.length >= maxRuns || Date.now() >= deadline) {
      pending.push(id);
      continue;
    }
    let marker: Marker = {};
    try {
      marker = JSON.parse(await fsp.readFile(pendingMarker(dir, id), 'utf8')) as Marker;
    } catch {
      // An empty or torn marker still means the run is owed.
    }
    // Owed to another sink (another config sharing this journal directory): not this one's to take.
    if (marker.sink && marker.sink !== shared.url) continue;
    // A run of this process other than `current` has ended (main() may run several times in one process).
    if (marker.host === hostname() && typeof marker.pid === 'number' && marker.pid !== process.pid && alive(marker.pid)) {
      pending.push(id);
      continue;
    }
    let text: string;
    try {
      text = await fsp.readFile(runFile(dir, id), 'utf8');
    } catch {
      // The run file is gone (pruned, removed): nothing is owed any more.
      await removeMarker(dir, id);
      continue;
    }
    const nl = text.indexOf('\n');
    try {
      await shared.store.put(shared.key(id)!, text, runMetadata(nl < 0 ? text : text.slice(0, nl)), AbortSignal.timeout(Math.max(1, deadline - Date.now())));
      await removeMarker(dir, id);
      uploaded.push(id);
    } catch (err) {
      failure = err;
      pending.push(id);
    }
  }
  if (failure !== undefined) {
    opts.warn(
      `the team journal ${shared.url} could not be written (${sharedFailure(failure)}): ${pending.length} run${pending.length === 1 ? ' stays' : 's stay'} queued in ${join(dir, PENDING)} for the next command`,
    );
  }
  return { uploaded, pending };
}

/** A run's part in the team journal: its uploads, and the catch-up of older runs that its first upload starts. */
export interface RunSharing {
  readonly upload: RunUpload;
  /** Awaits the last upload and the catch-up (bounded), then lets go of the store. */
  finish(): Promise<void>;
}

/** Shares a run as it is journaled. Nothing is contacted until the run writes its first gate or step end. */
export function shareRun(
  shared: SharedJournal,
  journal: Pick<Journal, 'onAppend'>,
  opts: { dir: string; runId: string; warn(message: string): void },
): RunSharing {
  let pending: Promise<CatchUpResult> | undefined;
  const upload = new RunUpload(shared, {
    ...opts,
    onFirstUpload: () => {
      pending = catchUp(shared, opts.dir, { current: opts.runId, warn: opts.warn });
    },
  });
  upload.attach(journal);
  let done: Promise<void> | undefined;
  return {
    upload,
    finish: () =>
      (done ??= (async () => {
        try {
          await Promise.all([upload.finish(), pending]);
        } finally {
          shared.close();
        }
      })()),
  };
}
