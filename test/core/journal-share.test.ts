/** The shared journal's logic against an in-memory store: coalesced uploads, failures, catch-up, and the merged reader. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFile, type JournalEventType } from '../../src/core/journal.js';
import { openJournal } from '../../src/core/journal-reader.js';
import { catchUp, pendingMarker, RunUpload, SharedJournal, SharedStoreError, type SharedListing, type SharedStore } from '../../src/core/journal-share.js';
import { teamJournal } from '../../src/core/journal-team.js';
import { tempDir } from '../support/cli.js';

interface Deferred {
  resolve(): void;
  reject(err: unknown): void;
}

/** Objects in a map; every call counted; `hold` makes puts wait until released; `fail` makes every call throw. */
class FakeStore implements SharedStore {
  readonly bucket = 'team';
  readonly objects = new Map<string, { body: string; metadata: Record<string, string> }>();
  readonly puts: string[] = [];
  readonly gets: string[] = [];
  readonly lists: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  hold = false;
  held: Deferred[] = [];
  fail: SharedStoreError | null = null;
  hang = false;
  signals: AbortSignal[] = [];

  async put(key: string, body: string, metadata: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<void> {
    this.puts.push(body);
    if (signal) this.signals.push(signal);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.hang) await new Promise((_r, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }));
      if (this.hold) await new Promise<void>((resolve, reject) => this.held.push({ resolve, reject }));
      if (this.fail) throw this.fail;
      this.objects.set(key, { body, metadata: { ...metadata } });
    } finally {
      this.inFlight--;
    }
  }
  async get(key: string): Promise<string | null> {
    this.gets.push(key);
    if (this.fail) throw this.fail;
    return this.objects.get(key)?.body ?? null;
  }
  async list(prefix: string, opts: { startAfter?: string } = {}): Promise<SharedListing> {
    this.lists.push(prefix);
    if (this.fail) throw this.fail;
    const keys: string[] = [];
    const prefixes = new Set<string>();
    for (const k of [...this.objects.keys()].sort()) {
      if (!k.startsWith(prefix) || (opts.startAfter && k <= opts.startAfter)) continue;
      const rest = k.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash < 0) keys.push(k);
      else prefixes.add(prefix + rest.slice(0, slash + 1));
    }
    return { keys, prefixes: [...prefixes].sort() };
  }
  close(): void {}
  release(): void {
    for (const d of this.held.splice(0)) d.resolve();
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const down = new SharedStoreError('cannot connect: ECONNREFUSED', 'ECONNREFUSED', false);

function line(type: JournalEventType, fields: Record<string, unknown> = {}, t = '2026-12-03T10:00:00.000Z'): string {
  return JSON.stringify({ t, type, ...fields });
}

interface RunSpec {
  operator?: string;
  procedure?: string;
  environment?: string;
  dryRun?: 'off' | 'plan';
  /** Omitted: a run cut off before its end. */
  end?: 'succeeded' | 'failed';
  steps?: number;
}

/** A run file's text; the start time from the run id. */
function runText(id: string, spec: RunSpec = {}): string {
  const t = `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:${id.slice(11, 13)}:${id.slice(13, 15)}.000Z`;
  const lines = [
    line(
      'run-start',
      {
        runId: id,
        procedure: spec.procedure ?? 'app scale',
        environment: spec.environment ?? 'prod',
        operator: spec.operator ?? 'alice@a',
        dryRun: spec.dryRun ?? 'off',
        params: {},
      },
      t,
    ),
  ];
  for (let i = 0; i < (spec.steps ?? 1); i++) {
    lines.push(line('step-start', { step: `s${i}`, title: `Step ${i}`, risk: 'write' }, t));
    lines.push(line('step-end', { step: `s${i}`, status: 'succeeded', durationMs: 1 }, t));
  }
  if (spec.end) lines.push(line('run-end', { status: spec.end, exitCode: spec.end === 'succeeded' ? 0 : 1, durationMs: 5 }, t));
  return lines.join('\n') + '\n';
}

function writeLocal(dir: string, id: string, text: string): void {
  const file = runFile(dir, id);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

const ID = '20261203T100000-aaaa';

function upload(store: FakeStore, opts: { dir?: string; runId?: string; warnings?: string[] } = {}) {
  const dir = opts.dir ?? tempDir('share-');
  const warnings = opts.warnings ?? [];
  const shared = new SharedJournal(store, 'ops/');
  const up = new RunUpload(shared, { dir, runId: opts.runId ?? ID, warn: (m) => warnings.push(m), attemptMs: 1000 });
  return { up, dir, warnings, shared };
}

describe('RunUpload', () => {
  it('uploads after gates and step ends, one at a time, and the latest text wins', async () => {
    const store = new FakeStore();
    const { up, dir } = upload(store);
    up.line(line('run-start', { procedure: 'db restart', environment: 'prod', operator: 'alice@a' }), 'run-start');
    up.line(line('step-start', { step: 'a' }), 'step-start');
    await tick();
    expect(store.puts).toHaveLength(0);
    store.hold = true;
    up.line(line('step-end', { step: 'a', status: 'succeeded' }), 'step-end');
    expect(store.puts).toHaveLength(1);
    expect(existsSync(pendingMarker(dir, ID))).toBe(true);
    // While the first is in flight, three more lines: one more upload, of all of them.
    up.line(line('gate', { step: 'b' }), 'gate');
    up.line(line('step-start', { step: 'b' }), 'step-start');
    up.line(line('step-end', { step: 'b', status: 'succeeded' }), 'step-end');
    up.line(line('run-end', { status: 'succeeded', exitCode: 0 }), 'run-end');
    expect(store.puts).toHaveLength(1);
    store.release();
    await tick();
    store.hold = false;
    store.release();
    await up.finish();
    expect(store.puts).toHaveLength(2);
    expect(store.maxInFlight).toBe(1);
    const object = store.objects.get('ops/runs/2026/12/03/20261203T100000-aaaa.ndjson')!;
    expect(
      object.body
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).type),
    ).toEqual(['run-start', 'step-start', 'step-end', 'gate', 'step-start', 'step-end', 'run-end']);
    expect(object.metadata).toEqual({ procedure: 'db restart', environment: 'prod', operator: 'alice@a' });
    expect(existsSync(pendingMarker(dir, ID))).toBe(false);
  });

  it('a run refused before it contacted anything (exit 2) uploads nothing', async () => {
    const store = new FakeStore();
    const { up, dir } = upload(store);
    up.line(line('run-start', { procedure: 'app scale', environment: 'prod' }), 'run-start');
    up.line(line('run-end', { status: 'failed', exitCode: 2 }), 'run-end');
    await up.finish();
    expect(store.puts).toHaveLength(0);
    expect(existsSync(pendingMarker(dir, ID))).toBe(false);
  });

  it('a failing sink warns once, never throws, and leaves the marker; the complete text is not retried twice', async () => {
    const store = new FakeStore();
    store.fail = down;
    const { up, dir, warnings } = upload(store);
    up.line(line('run-start', { procedure: 'app scale', environment: 'prod' }), 'run-start');
    for (const s of ['a', 'b', 'c']) {
      up.line(line('step-end', { step: s, status: 'succeeded' }), 'step-end');
      await tick();
    }
    up.line(line('run-end', { status: 'succeeded', exitCode: 0 }), 'run-end');
    await up.finish();
    expect(warnings).toEqual([
      `the team journal s3://team/ops could not be written (cannot connect: ECONNREFUSED): run ${ID} goes on, journaled locally, and is uploaded by the next command that reaches it`,
    ]);
    expect(store.puts).toHaveLength(4);
    expect(JSON.parse(readFileSync(pendingMarker(dir, ID), 'utf8'))).toMatchObject({ sink: 's3://team/ops', pid: process.pid });
  });

  it('the last upload is awaited only so long, then abandoned (the marker stays)', async () => {
    const store = new FakeStore();
    store.hang = true;
    const { up, dir, warnings } = upload(store);
    up.line(line('run-start', { procedure: 'app scale', environment: 'prod' }), 'run-start');
    up.line(line('run-end', { status: 'succeeded', exitCode: 0 }), 'run-end');
    const t0 = performance.now();
    await up.finish(100);
    expect(performance.now() - t0).toBeLessThan(900);
    expect(store.signals.every((s) => s.aborted)).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/could not be written \(no answer within 0s\)/);
    expect(existsSync(pendingMarker(dir, ID))).toBe(true);
  });
});

describe('catchUp', () => {
  const ids = ['20261201T080000-0001', '20261202T080000-0002', '20261203T080000-0003'];

  function pending(dir: string, id: string, marker: Record<string, unknown>) {
    writeLocal(dir, id, runText(id, { end: 'succeeded' }));
    mkdirSync(dirname(pendingMarker(dir, id)), { recursive: true });
    writeFileSync(pendingMarker(dir, id), JSON.stringify(marker));
  }

  it("uploads owed runs and removes their markers; leaves another sink's, a live process's and the current run's", async () => {
    const store = new FakeStore();
    const shared = new SharedJournal(store, 'ops');
    const dir = tempDir('catchup-');
    pending(dir, ids[0], { sink: 's3://team/ops', pid: 999_999_999, host: hostname() });
    pending(dir, ids[1], { sink: 's3://other/x' });
    pending(dir, ids[2], { sink: 's3://team/ops', pid: process.ppid, host: hostname() });
    pending(dir, '20261203T090000-0004', {});
    pending(dir, '20261203T100000-0005', { sink: 's3://team/ops' });
    const warnings: string[] = [];
    const r = await catchUp(shared, dir, { current: '20261203T100000-0005', warn: (m) => warnings.push(m) });
    expect(r).toEqual({ uploaded: [ids[0], '20261203T090000-0004'], pending: [ids[2]] });
    expect(warnings).toEqual([]);
    expect(store.objects.get(shared.key(ids[0])!)?.body).toBe(readFileSync(runFile(dir, ids[0]), 'utf8'));
    expect(store.objects.get(shared.key(ids[0])!)?.metadata).toEqual({ procedure: 'app scale', environment: 'prod', operator: 'alice@a' });
    expect(existsSync(pendingMarker(dir, ids[0]))).toBe(false);
    for (const kept of [ids[1], ids[2], '20261203T100000-0005']) expect(existsSync(pendingMarker(dir, kept))).toBe(true);
  });

  it('stops at the first failure with one warning, and at the count limit; markers stay', async () => {
    const store = new FakeStore();
    const shared = new SharedJournal(store, '');
    const dir = tempDir('catchup-');
    for (const id of ids) pending(dir, id, {});
    const limited = await catchUp(shared, dir, { warn: () => undefined, maxRuns: 1 });
    expect(limited).toEqual({ uploaded: [ids[0]], pending: [ids[1], ids[2]] });
    store.fail = down;
    const warnings: string[] = [];
    const r = await catchUp(shared, dir, { warn: (m) => warnings.push(m) });
    expect(r).toEqual({ uploaded: [], pending: [ids[1], ids[2]] });
    expect(store.puts).toHaveLength(2);
    expect(warnings).toEqual([
      `the team journal s3://team could not be written (cannot connect: ECONNREFUSED): 2 runs stay queued in ${dir}/shared-pending for the next command`,
    ]);
    expect(existsSync(pendingMarker(dir, ids[1]))).toBe(true);
  });
});

describe('the merged reader', () => {
  /** Shared runs of four days, and a local journal holding two of them (one cut off locally, complete in the team's). */
  function setUp() {
    const store = new FakeStore();
    const shared = new SharedJournal(store, 'ops');
    const dir = tempDir('team-');
    const put = (id: string, spec: RunSpec) => store.objects.set(shared.key(id)!, { body: runText(id, spec), metadata: {} });
    put('20261128T120000-0001', { operator: 'bob@b', end: 'succeeded' });
    put('20261201T120000-0002', { operator: 'bob@b', end: 'failed', procedure: 'db restart' });
    put('20261202T120000-0003', { operator: 'alice@a', end: 'succeeded', steps: 3 });
    put('20261203T090000-0004', { operator: 'bob@b', dryRun: 'plan', end: 'succeeded' });
    put('20261203T100000-0005', { operator: 'alice@a', end: 'succeeded' });
    writeLocal(dir, '20261202T120000-0003', runText('20261202T120000-0003', { operator: 'alice@a', steps: 1 }));
    writeLocal(dir, '20261203T100000-0005', runText('20261203T100000-0005', { operator: 'alice@a', end: 'succeeded' }));
    writeLocal(dir, '20261203T110000-0006', runText('20261203T110000-0006', { operator: 'alice@a', end: 'succeeded' }));
    const warnings: string[] = [];
    const current = '20261203T110000-0006';
    const reader = teamJournal(openJournal(dir, { current }), shared, { warn: (m) => warnings.push(m), current });
    return { store, shared, dir, reader, warnings };
  }

  it('merges by run id, newest first, the fuller copy of each; a run complete here is not read from the team', async () => {
    const { reader, store } = setUp();
    const runs = await reader.runs({ includeDryRuns: true });
    expect(runs.map((r) => [r.runId, r.source, r.status])).toEqual([
      ['20261203T100000-0005', 'local', 'succeeded'],
      ['20261203T090000-0004', 'team', 'succeeded'],
      ['20261202T120000-0003', 'both', 'succeeded'],
      ['20261201T120000-0002', 'team', 'failed'],
      ['20261128T120000-0001', 'team', 'succeeded'],
    ]);
    expect(runs.find((r) => r.runId === '20261202T120000-0003')?.events).toHaveLength(8);
    expect(store.gets.some((k) => k.includes('0005'))).toBe(false);
    expect(store.gets.some((k) => k.includes('0006'))).toBe(false);
  });

  it('reads only the days and objects a query needs', async () => {
    const { reader, store } = setUp();
    const newest = await reader.runs({ limit: 2 });
    expect(newest.map((r) => r.runId)).toEqual(['20261203T100000-0005', '20261202T120000-0003']);
    expect(store.lists.filter((p) => /\/\d\d\/$/.test(p) && p.split('/').length === 6)).toEqual(['ops/runs/2026/12/03/', 'ops/runs/2026/12/02/']);
    store.lists.length = 0;
    store.gets.length = 0;
    const since = await reader.runs({ since: Date.parse('2026-12-02T01:00:00Z'), procedure: 'app scale', where: (r) => r.operator === 'alice@a' });
    expect(since.map((r) => r.runId)).toEqual(['20261203T100000-0005', '20261202T120000-0003']);
    expect(store.lists).not.toContain('ops/runs/2026/11/');
    expect(store.lists).not.toContain('ops/runs/2026/12/01/');
    expect(store.gets.map((k) => k.slice(-25, -7))).toEqual(['20261203T090000-0004', '20261202T120000-0003'].map((id) => id.slice(-18)));
  });

  it('run() prefers the team copy of a run cut off here; an unreachable team journal is one warning and the local runs', async () => {
    const { reader, store, warnings } = setUp();
    expect((await reader.run('20261202T120000-0003'))?.source).toBe('both');
    expect((await reader.run('20261202T120000-0003'))?.end?.status).toBe('succeeded');
    expect((await reader.run('20261201T120000-0002'))?.source).toBe('team');
    store.fail = down;
    const runs = await reader.runs();
    expect(runs.map((r) => r.runId)).toEqual(['20261203T100000-0005', '20261202T120000-0003']);
    expect(runs.every((r) => r.source === 'local')).toBe(true);
    await reader.runs();
    expect(warnings).toEqual(['the team journal s3://team/ops could not be read (cannot connect: ECONNREFUSED): showing local runs only']);
    expect(reader.unreachable).toBe(true);
  });

  it('a missing bucket throws a config error when strict (history --team)', async () => {
    const { shared, dir } = setUp();
    (shared.store as FakeStore).fail = new SharedStoreError('NoSuchBucket (404): bucket team does not exist', 'NoSuchBucket', true);
    const strict = teamJournal(openJournal(dir), shared, { strict: true });
    await expect(strict.runs()).rejects.toMatchObject({
      exitCode: 2,
      message: 'the team journal s3://team/ops could not be read (NoSuchBucket (404): bucket team does not exist)',
    });
  });
});
